"""`ststest send` against a REAL Postfix on loopback, with swaks and openssl s_client as
independent cross-checks of the same Postfix.

Each test starts a private Postfix (tests/integration/postfix_fixture.py) on 127.0.0.1:<free
port> with a certificate made by the openssl CLI from a throw-away CA: `valid` names
mail.postfix.test, `wrong-name` names only other.example.net. The sender finds that MX through
DNS served by our fake world used as a DNS server only (a scenario with zone lines and no
policy or MX servers, written to the test's tmp dir). What is checked comes from Postfix
itself: its Maildir (did the message arrive, does its Received: header say ESMTPS and name the
TLS version) and its log (smtpd's per-connection command counts on the "disconnect from"
line, queue ids).

Needs root and the postfix package (scripts/install-postfix.sh). If Postfix is unusable the
tests FAIL with the reason; STSTEST_NO_POSTFIX=1 skips them instead.
"""
import re
import subprocess
import time

import pytest

from conftest import json_doc, run_sender, scenario_file
from postfix_fixture import (DOMAIN, MAILBOX, MX_HOST, OpensslCA, openssl_ca,  # noqa: F401
                             postfix_factory, postfix_required, received_header)

pytestmark = pytest.mark.usefixtures("postfix_required")

# Zone for the sender: postfix.test's only MX is mail.postfix.test at 127.0.0.1, where the
# private Postfix listens (on the port passed with --smtp-port).
DNS_SCENARIO = f"""\
name: postfix-dns
about: >
  DNS only, for tests against a real Postfix on 127.0.0.1: the world serves this zone and
  runs no policy host or MX of its own. `expect` is required by the scenario schema; these
  tests never hand the file to `ststest run`, they check Postfix instead.
refs: [RFC 5321 5.1]
domain: {DOMAIN}
dns: |
  @     MX  10 mail
  mail  A   127.0.0.1
expect:
  enforce: {{outcome: delivered}}
"""


@pytest.fixture
def dns_world(world_factory, tmp_path):
    return world_factory(scenario_file(tmp_path, "postfix-dns", DNS_SCENARIO))


def send(binary, world, pf, ca, *args):
    """Run `ststest send --json` at the Postfix, trusting the openssl CA, with the world as
    DNS server; returns (CompletedProcess, the one result)."""
    r = run_sender(binary, "send", world, "--helo", "sender.ststest.test", "--json", *args,
                   MAILBOX, ca_file=ca.cert, smtp_port=pf.port)
    doc = json_doc(r)
    assert len(doc["results"]) == 1, doc
    return r, doc["results"][0]


def disconnect_line(pf, mark):
    """smtpd's 'disconnect from' line for the (single) connection made after `mark`, e.g.
    'disconnect from unknown[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7'."""
    return pf.wait_log(r"postfix/smtpd\[\d+\]: disconnect from \S+ (.*)", mark).group(1)


def assert_arrived_over_tls(pf, mark, n=1):
    """n messages in the mailbox, the newest received with ESMTPS over TLS, and smtpd's log for
    the connection shows STARTTLS before MAIL."""
    msgs = pf.wait_messages(n)
    assert len(msgs) == n, f"expected {n} message(s), mailbox has {len(msgs)}"
    rcv = received_header(msgs[-1])
    assert rcv, f"no Received: header:\n{msgs[-1]}"
    assert "with ESMTPS" in rcv, rcv
    assert re.search(r"\(using TLSv1\.[23] with cipher \S+", rcv), rcv
    assert f"by {MX_HOST} (Postfix)" in rcv, rcv
    counts = disconnect_line(pf, mark)
    assert re.search(r"\bstarttls=1\b", counts) and re.search(r"\bmail=1\b", counts), counts
    # The mailbox can be written before postlogd has logged the delivery: wait for the line.
    pf.wait_log(r": to=<%s>, relay=virtual, .*status=sent" % re.escape(MAILBOX), mark)
    log = pf.log_since(mark)
    assert re.search(r"TLS connection established from \S+: TLSv1\.[23]", log), log
    return msgs[-1]


def assert_nothing_arrived(pf, mark):
    """No envelope and no message reached this Postfix after `mark`."""
    counts = disconnect_line(pf, mark)
    assert not re.search(r"\b(mail|rcpt|data|bdat)=", counts), \
        f"the sender gave Postfix an envelope: {counts}"
    log = pf.log_since(mark)
    # smtpd assigns a queue id and logs "<id>: client=" when it accepts MAIL FROM.
    assert not re.search(r"postfix/smtpd\[\d+\]: [0-9A-F]{6,}: client=", log), log
    assert pf.messages() == [], "a message reached the mailbox"
    assert pf.queued() == [], f"queue files: {pf.queued()}"


def world_saw_mx_lookup(world):
    observed = world.stop()
    names = {(q["name"].rstrip(".").lower(), q["type"]) for q in observed["dns"]}
    assert (DOMAIN, "MX") in names, observed["dns"]
    assert (MX_HOST, "A") in names, observed["dns"]
    assert observed["smtp_sessions"] == [], "the world ran an MX of its own"


# -- independent cross-checks of the same Postfix -------------------------------------------

def test_swaks_delivers_over_verified_tls(postfix_factory, openssl_ca):
    pf = postfix_factory("valid")
    mark = pf.log_mark()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(pf.port),
                        "--tls", "--tls-verify", "--tls-ca-path", str(openssl_ca.cert),
                        "--tls-sni", MX_HOST, "--helo", "swaks.ststest.test",
                        "--from", "swaks@ststest.test", "--to", MAILBOX, "--timeout", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"swaks exited {r.returncode}:\n{r.stdout}{r.stderr}"
    assert re.search(r"<~ +250 .*queued as [0-9A-F]+", r.stdout), r.stdout
    msg = assert_arrived_over_tls(pf, mark)
    assert "From: swaks@ststest.test" in msg


def test_swaks_tls_verify_rejects_unknown_ca(postfix_factory, tmp_path):
    """swaks' --tls-verify really verifies: trusting another CA, it refuses and sends nothing.
    (swaks 20201014 checks only the chain, not the host name, so the name check is cross-
    checked with openssl s_client below.)"""
    other = OpensslCA(tmp_path / "other-ca")
    pf = postfix_factory("valid")
    mark = pf.log_mark()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(pf.port),
                        "--tls", "--tls-verify", "--tls-ca-path", str(other.cert),
                        "--from", "swaks@ststest.test", "--to", MAILBOX, "--timeout", "10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, f"swaks delivered despite an untrusted certificate:\n{r.stdout}"
    assert_nothing_arrived(pf, mark)


@pytest.mark.parametrize("cert,name,ok", [
    ("valid", MX_HOST, True),
    ("wrong-name", MX_HOST, False),
    ("wrong-name", "other.example.net", True),   # only the name is wrong: the chain is good
])
def test_openssl_s_client_name_check(postfix_factory, openssl_ca, cert, name, ok):
    pf = postfix_factory(cert)
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{pf.port}",
                        "-starttls", "smtp", "-servername", MX_HOST,
                        "-CAfile", str(openssl_ca.cert), "-verify_hostname", name,
                        "-verify_return_error", "-brief"],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    if ok:
        assert r.returncode == 0 and "Verification: OK" in out, out
    else:
        assert r.returncode != 0 and "hostname mismatch" in out, out


# -- the ststest sender ---------------------------------------------------------------------

def test_send_require_tls_valid_cert_delivers(ststest_bin, postfix_factory, openssl_ca, dns_world):
    pf = postfix_factory("valid")
    mark = pf.log_mark()
    r, res = send(ststest_bin, dns_world, pf, openssl_ca, "--require-tls")
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr}"
    assert res["outcome"] == "delivered", res
    assert res["failures"] == [], res
    assert [m["host"] for m in res["mx"]] == [MX_HOST], res["mx"]
    mx = res["mx"][0]
    assert mx["action"] == "delivered" and mx["failure"] is None, mx
    assert mx["address"] == "127.0.0.1", mx
    assert mx["tls"]["verified"] is True, mx["tls"]
    assert mx["tls"]["version"] in ("TLSv1.2", "TLSv1.3"), mx["tls"]
    # The queue id Postfix gave is the one the sender reports, and that message arrived.
    qid = pf.wait_log(r"postfix/smtpd\[\d+\]: ([0-9A-F]{6,}): client=", mark).group(1)
    assert qid in mx["detail"], (qid, mx["detail"])
    msg = assert_arrived_over_tls(pf, mark)
    assert f"by {MX_HOST} (Postfix) with ESMTPS id {qid}" in received_header(msg)
    assert "from sender.ststest.test" in received_header(msg)
    world_saw_mx_lookup(dns_world)


def test_send_require_tls_wrong_name_defers_and_sends_nothing(ststest_bin, postfix_factory,
                                                              openssl_ca, dns_world):
    pf = postfix_factory("wrong-name")
    mark = pf.log_mark()
    r, res = send(ststest_bin, dns_world, pf, openssl_ca, "--require-tls")
    assert r.returncode == 75, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert res["outcome"] == "deferred", res
    assert res["failures"] == ["certificate-host-mismatch"], res
    mx = res["mx"][0]
    assert mx["host"] == MX_HOST and mx["failure"] == "certificate-host-mismatch", mx
    assert mx["action"] != "delivered", mx
    assert mx["tls"]["verified"] is False, mx["tls"]
    assert_nothing_arrived(pf, mark)
    # And Postfix saw STARTTLS, i.e. the sender got as far as checking the certificate.
    assert re.search(r"\bstarttls=", disconnect_line(pf, mark))
    world_saw_mx_lookup(dns_world)


def test_send_opportunistic_wrong_name_delivers(ststest_bin, postfix_factory, openssl_ca,
                                                dns_world):
    """No policy and no --require-tls: opportunistic TLS (RFC 8461 section 5 'none' / RFC 3207),
    so a certificate naming another host does not stop delivery; the message still travels
    encrypted."""
    pf = postfix_factory("wrong-name")
    mark = pf.log_mark()
    r, res = send(ststest_bin, dns_world, pf, openssl_ca)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr}"
    assert res["outcome"] == "delivered", res
    mx = res["mx"][0]
    assert mx["action"] == "delivered", mx
    assert mx["starttls"] is True and mx["tls"]["verified"] is False, mx
    assert_arrived_over_tls(pf, mark)
    world_saw_mx_lookup(dns_world)


# -- check --assure-tls (CheckTLS's TestReceiverAssureTLS) against a real Postfix ------------

@pytest.mark.parametrize("level,assuredness,exit_code,verdict", [
    ("may", 0, 1, "accepted"),      # STARTTLS offered, mail in the clear accepted
    ("encrypt", 100, 0, "refused"),  # 530 5.7.0 Must issue a STARTTLS command first
])
def test_check_assure_tls(ststest_bin, postfix_factory, dns_world, level, assuredness,
                          exit_code, verdict):
    # The instance has one mailbox, not postmaster: without smtpd_reject_unlisted_recipient
    # = no its "550 5.1.1 User unknown" would read as a refusal (assure.h: any 4xx/5xx).
    pf = postfix_factory("valid", main_extra=f"smtpd_tls_security_level = {level}\n"
                                             "smtpd_reject_unlisted_recipient = no\n")
    mark = pf.log_mark()
    r = run_sender(ststest_bin, "check", dns_world, "--assure-tls", "--json", DOMAIN,
                   smtp_port=pf.port)
    doc = json_doc(r)
    assert r.returncode == exit_code, r.stderr
    a = doc["results"][0]["assure_tls"]
    assert a["assuredness"] == assuredness, a
    [mx] = a["mx"]
    assert (mx["host"], mx["address"], mx["verdict"]) == (MX_HOST, "127.0.0.1", verdict), mx
    if level == "encrypt":
        assert mx["stage"] == "mail" and mx["reply"].startswith("530 5.7.0"), mx
    else:
        assert mx["stage"] == "rcpt" and mx["reply"].startswith("250"), mx
    # Never DATA: smtpd counts the commands it saw.
    counts = disconnect_line(pf, mark)
    assert "data=" not in counts and "starttls=" not in counts, counts
    # smtpd opened a queue file at MAIL FROM (cleanup(8), in queue/incoming); after a QUIT
    # without DATA cleanup removes it a moment later. Wait for that: then nothing may be left.
    deadline = time.monotonic() + 5
    while pf.queued() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pf.messages() == [] and pf.queued() == []
    world_saw_mx_lookup(dns_world)
