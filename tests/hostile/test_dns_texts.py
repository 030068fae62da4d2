"""DNS failures a hostile server produces (issue 14): a CNAME loop, a TXT record and an
MX record whose RDATA runs past its end. Each is a temporary failure (the message is
deferred, never failed and never delivered on the strength of a broken answer), and
each reads the same way whichever lookup it was: "NAME TYPE: WHAT (STATUS)", in the
transcript and in the JSON detail.
"""
import re

from hostile_dns import HostileDns, world
from hostile_run import assert_not_delivered, run_sender


def send_at(ststest_bin, fault, trap_factory, *extra):
    """Run the sender at the hostile DNS server of `fault`; the MX (when it has an
    address) is a trap that closes every connection."""
    smtp = trap_factory("127.0.0.1")
    dns = HostileDns(world(fault))
    try:
        run = run_sender(ststest_bin, "--dns", dns.addr, "--no-cache", "--smtp-port",
                         str(smtp.port), *extra)
    finally:
        dns.close()
    return run, smtp, dns


def test_cname_loop(ststest_bin, trap_factory):
    run, smtp, dns = send_at(ststest_bin, "cname-loop", trap_factory, "--require-tls")
    assert_not_delivered(run, "deferred")
    why = ("mail.example.test A/AAAA: CNAME loop: mail.example.test -> loop.example.test "
           "-> mail.example.test (ERROR)")
    assert f"DNS {why}" in run.stderr
    [mx] = run.mx("mail.example.test")
    assert mx["action"] == "tempfail" and mx["stage"] == "DNS"
    assert mx["detail"] == f"no address: {why}"
    assert run.result["detail"] == f"mail.example.test: no address: {why}"
    assert smtp.peers == []


def test_malformed_txt(ststest_bin, trap_factory):
    """A TXT answer that does not parse is no answer (ERROR, temporary), not the
    absence of a record (NODATA)."""
    run, smtp, dns = send_at(ststest_bin, "txt-malformed", trap_factory, "--require-tls")
    assert_not_delivered(run, "deferred")
    assert ("DNS _mta-sts.example.test TXT: malformed answer: Misformatted DNS reply (ERROR)"
            in run.stderr)
    assert "NODATA" not in run.stderr
    assert run.result["policy"]["source"] == "none"
    # The MX trap closed the connection before its greeting: nothing was sent.
    assert len(smtp.peers) == 1
    assert ("_mta-sts.example.test", "TXT") in dns.asked


def test_malformed_mx(ststest_bin, trap_factory):
    run, smtp, dns = send_at(ststest_bin, "mx-malformed", trap_factory)
    assert_not_delivered(run, "deferred")
    why = "example.test MX: malformed answer: Misformatted domain name (ERROR)"
    assert f"DNS {why}" in run.stderr
    assert run.result["detail"] == why
    assert run.result["mx"] == []
    assert smtp.peers == []


def test_same_words_for_every_type(ststest_bin, trap_factory):
    """Every DNS failure line of the three runs above, and an ordinary NODATA, has one
    shape: NAME TYPE: WHAT (STATUS)."""
    shape = re.compile(r"^(\S+\.)?example\.test (TXT|MX|A/AAAA): \S.* "
                       r"\((NXDOMAIN|NODATA|SERVFAIL|TIMEOUT|REFUSED|CANCELLED|ERROR)\)$")
    texts = []
    for fault in ("cname-loop", "txt-malformed", "mx-malformed"):
        run, _, _ = send_at(ststest_bin, fault, trap_factory)
        texts += [line.split("] DNS ", 1)[1] for line in run.stderr.splitlines()
                  if "] DNS " in line and " -> " not in line.split(": ", 1)[0]]
    assert "_mta-sts.example.test TXT: no TXT record (NODATA)" in texts
    assert len(texts) == 5, texts  # TXT + A/AAAA, TXT, TXT + MX
    for text in texts:
        assert shape.match(text), text
