"""Hostile DNS servers (issue 14): a compression pointer that points at itself, garbage
after the question, the TC bit on every answer over UDP and TCP alike, 1,000 MX records,
a TXT record of 60 KiB. (CNAME loops and RDATA that runs past its end are in
test_dns_texts.py.)

The MX behind every address is a server without STARTTLS that accepts anything, and
the sender runs with --require-tls: each case asserts that the message is deferred
(exit 75, never failed on the strength of a broken answer), that the peer never saw
MAIL/RCPT/DATA, that the run ended within its bound, that the peak RSS stayed below
RSS_MIB (a Release sender needs about 14 MiB here; a sanitizer build gets
ASAN_RSS_FACTOR times more), and what the transcript says.
"""
import pytest

from hostile_dns import WIRE_FAULTS, HostileDns, world
from hostile_run import TIMEOUT, assert_not_delivered, assert_rss_below, run_sender
import hostile_tcp
from hostile_tcp import HostileTcp

RSS_MIB = 32
DNS_TIMEOUT = 3


def send_at(ststest_bin, fault):
    smtp = HostileTcp(hostile_tcp.smtp_plain_accepting)
    dns = HostileDns(world(fault), wire=WIRE_FAULTS.get(fault))
    try:
        run = run_sender(ststest_bin, "--dns", dns.addr, "--no-cache", "--smtp-port",
                         str(smtp.port), "--dns-timeout", str(DNS_TIMEOUT), "--require-tls")
    finally:
        dns.close()
        smtp.close()
    assert_not_delivered(run, "deferred", bound=TIMEOUT)
    assert_rss_below(run, ststest_bin, RSS_MIB)
    assert not {"MAIL", "RCPT", "DATA"} & set(smtp.received), smtp.received
    return run, smtp, dns


# The fault on the wire, and what the MX lookup says (the TXT lookup says the same).
WIRE = {
    "pointer-loop": "malformed answer: Misformatted domain name (ERROR)",
    "garbage-after-question": "malformed answer: Misformatted domain name (ERROR)",
    "tc-loop": "truncated answer: the TC bit is set even over TCP (ERROR)",
}


@pytest.mark.parametrize("fault", WIRE)
def test_wire_fault(ststest_bin, fault):
    """No answer that parses: a temporary failure of both lookups, no MX contacted."""
    run, smtp, dns = send_at(ststest_bin, fault)
    why = WIRE[fault]
    assert f"DNS _mta-sts.example.test TXT: {why}" in run.stderr
    assert f"DNS example.test MX: {why}" in run.stderr
    assert run.result["detail"] == f"example.test MX: {why}"
    assert run.result["mx"] == [] and run.result["policy"]["source"] == "none"
    assert smtp.connections == 0
    if fault == "tc-loop":
        # Each question asked once over UDP, once over TCP, and never again.
        assert dns.queries == [("_mta-sts.example.test", "TXT", "udp"),
                               ("_mta-sts.example.test", "TXT", "tcp"),
                               ("example.test", "MX", "udp"), ("example.test", "MX", "tcp")]


def test_1000_mx_records(ststest_bin):
    """1,000 MX records (35 KB, over TCP): the first 16 are tried, each refused for want of
    STARTTLS; the answer is not a reason to try a thousand servers."""
    run, smtp, dns = send_at(ststest_bin, "mx-1000")
    assert ("example.test", "MX", "tcp") in dns.queries
    assert "MX only the first 16 of 1000 hosts are tried" in run.stderr
    assert len(run.result["mx"]) == 16
    assert all(m["action"] == "refused" and m["failure"] == "starttls-not-supported"
               for m in run.result["mx"])
    assert smtp.connections == 16
    assert run.result["failures"] == ["starttls-not-supported"]
    # Preference order: the 16 tried are the 20 of preference 0 (i % 50 == 0), shuffled.
    assert {m["preference"] for m in run.result["mx"]} == {0}


def test_60k_txt_record(ststest_bin):
    """A TXT record of 60 KiB (240 strings, over TCP) that starts like an STS record and
    is not one: no policy; the transcript quotes it cut short."""
    run, smtp, dns = send_at(ststest_bin, "txt-60k")
    assert ("_mta-sts.example.test", "TXT", "tcp") in dns.queries
    assert "MTASTS invalid STS TXT record: line 1, column 25: field 'xxxx" in run.stderr
    assert "MTASTS no policy announced for example.test" in run.stderr
    assert max(len(line) for line in run.stderr.splitlines()) < 1024
    assert run.result["policy"]["source"] == "none"
    [mx] = run.mx("mail.example.test")
    assert mx["action"] == "refused" and mx["failure"] == "starttls-not-supported"
