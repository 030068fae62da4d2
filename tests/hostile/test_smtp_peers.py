"""Hostile MX servers (issue 14): what a scripted SMTP peer that misbehaves on purpose does
to the sender under --require-tls.

Each case asserts: the message is deferred (exit 75), no envelope command (MAIL, RCPT,
DATA) ever reached the peer, the run ended within its per-stage --timeout (plus a margin
for start-up), its peak RSS stayed below RSS_MIB (a Release sender needs about 14 MiB
here; a sanitizer build gets ASAN_RSS_FACTOR times more), and the transcript and the
JSON say what was wrong in the words below.
"""
import pytest

from hostile_certs import Pki
from hostile_dns import HostileDns, world
from hostile_run import assert_not_delivered, assert_rss_below, run_sender
import hostile_tcp
from hostile_tcp import HostileTcp

RSS_MIB = 32          # every case; the sender's own reply cap is 64 KiB
STAGE_TIMEOUT = 2     # --timeout of the cases that wait for a silent peer
MARGIN = 3            # start-up and the end of the run, seconds


def send_to(ststest_bin, behaviour, ca_file, cert=None, key=None, timeout=STAGE_TIMEOUT):
    srv = HostileTcp(behaviour, cert, key)
    dns = HostileDns(world("none"))
    try:
        run = run_sender(ststest_bin, "--dns", dns.addr, "--no-cache", "--smtp-port",
                         str(srv.port), "--ca-file", str(ca_file), "--require-tls",
                         timeout=timeout)
    finally:
        dns.close()
        srv.close()
    return run, srv


def assert_refused(run, srv, binary, stage, detail, timeout=STAGE_TIMEOUT):
    assert_not_delivered(run, "deferred", bound=timeout + MARGIN)
    assert_rss_below(run, binary, RSS_MIB)
    assert not {"MAIL", "RCPT", "DATA"} & set(srv.received), srv.received
    [mx] = run.mx("mail.example.test")
    assert mx["stage"] == stage, mx
    assert mx["detail"] == detail, mx
    assert run.result["detail"] == f"mail.example.test: {detail}"
    assert f"RESULT detail: mail.example.test: {detail}" in run.stderr
    return mx


# behaviour, stage, detail, what the peer heard
CASES = {
    "reply-code-abc": (
        hostile_tcp.smtp_reply_code_abc, "BANNER",
        'bad reply in BANNER: reply line 1 does not start with a reply code: '
        '"abc mail.example.test ESMTP"', []),
    "10000-ehlo-lines": (
        hostile_tcp.smtp_ehlo_10000_lines, "EHLO",
        "bad reply in EHLO: reply longer than 65536 bytes", ["EHLO"]),
    "endless-multiline-greeting": (
        hostile_tcp.smtp_endless_multiline, "BANNER",
        "bad reply in BANNER: reply longer than 65536 bytes", []),
    "silence-after-starttls": (
        hostile_tcp.smtp_silence_after_starttls, "STARTTLS",
        f"no reply in STARTTLS within {STAGE_TIMEOUT:.1f} s", ["EHLO", "STARTTLS"]),
    "handshake-never-finishes": (
        hostile_tcp.smtp_handshake_never_finishes, "TLS",
        f"no reply in TLS within {STAGE_TIMEOUT:.1f} s", ["EHLO", "STARTTLS"]),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_smtp_peer(ststest_bin, pki, case):
    behaviour, stage, detail, heard = CASES[case]
    run, srv = send_to(ststest_bin, behaviour, pki.ca_file, *pki.server)
    mx = assert_refused(run, srv, ststest_bin, stage, detail)
    assert mx["action"] == "tempfail"
    # The peer heard exactly this (the sender closes without QUIT on a broken session).
    assert srv.received == heard
    assert f"SMTP {stage} tempfail: {detail}" in run.stderr


# A chain of intermediates: the CA that ends it, how many, what OpenSSL says.
CHAINS = {
    # 100 intermediates under a CA the sender does not trust.
    "100-intermediates-unknown-root": ("unknown", 100, "unable to get local issuer certificate"),
    # 100 intermediates under a CA of the trusted CA's name but another key: the sender
    # finds "its" CA by name and the signature fails; it must not read as validated.
    "100-intermediates-forged-root": ("forged", 100, "certificate signature failure"),
    # 101 intermediates under the trusted CA: longer than OpenSSL's depth of 100.
    "101-intermediates-trusted-root": ("trusted", 101, "certificate chain too long"),
}


@pytest.mark.parametrize("case", CHAINS)
def test_long_chain(ststest_bin, pki, tmp_path, case):
    root, n, verify_error = CHAINS[case]
    issuer = {"unknown": Pki(tmp_path / "unknown", "some other CA"),
              "forged": Pki(tmp_path / "forged", pki.name), "trusted": pki}[root]
    cert, key = issuer.long_chain("chain", ["mail.example.test"], n)
    run, srv = send_to(ststest_bin, hostile_tcp.smtp_long_chain, pki.ca_file, cert, key)
    mx = assert_refused(run, srv, ststest_bin, "TLS",
                        "certificate not verified; TLS is required, MX refused")
    assert mx["action"] == "refused" and mx["failure"] == "certificate-not-trusted"
    assert mx["tls"]["handshake"] is True and mx["tls"]["verified"] is False
    assert mx["tls"]["chain_ok"] is False
    assert mx["tls"]["verify_error"] == verify_error
    assert run.result["failures"] == ["certificate-not-trusted"]
    assert f"Cert NOT VALIDATED: {verify_error}" in run.stderr
    assert "Cert VALIDATED" not in run.stderr
    # After TLS, nothing but QUIT: no second EHLO, no envelope.
    assert srv.received == ["EHLO", "STARTTLS", "QUIT"]


def test_assure_tls_endless_greeting(ststest_bin):
    """check --assure-tls against a greeting without end: the MX is not tested, in the
    words of send ("reply longer than 65536 bytes"), and the run ends within --timeout
    with assuredness 0 (exit 1), bounded in memory."""
    srv = HostileTcp(hostile_tcp.smtp_endless_multiline)
    dns = HostileDns(world("none"))
    try:
        run = run_sender(ststest_bin, "--assure-tls", "--dns", dns.addr, "--smtp-port",
                         str(srv.port), command="check", target="example.test",
                         timeout=STAGE_TIMEOUT)
    finally:
        dns.close()
        srv.close()
    assert run.returncode == 1, run.stderr
    assert run.elapsed < STAGE_TIMEOUT + MARGIN
    assert_rss_below(run, ststest_bin, RSS_MIB)
    assert ("mx mail.example.test [127.0.0.1] not-tested at banner: reply longer than 65536 "
            "bytes") in run.stderr
    assert srv.received == []
    assert run.result["assure_tls"]["assuredness"] == 0
    [mx] = run.result["assure_tls"]["mx"]
    assert mx["host"] == "mail.example.test"
