"""Hostile policy hosts (issue 14): an endless chunked body, a body dripped one byte a
second (it ends at --timeout, which bounds the whole fetch), a gzip bomb, 100,000 header
lines. The only MX offers no STARTTLS and accepts
anything, so a sender that gave up on TLS would deliver there in the clear.

Each case runs twice:
* --require-tls, no cache: the fetch fails, the MX is refused (starttls-not-supported);
* enforce from the cache: a first run caches the enforce policy of a well-behaved host,
  then the TXT id changes and the host turns hostile; the refetch fails and the cached
  enforce policy stays in force (RFC 8461 5.1), so the MX is refused again.
Both: deferred (exit 75), the peer never saw MAIL/RCPT/DATA, the run ended within its
bound, the peak RSS stayed below RSS_MIB (about 14 MiB is what libcurl, OpenSSL and the
trust store take here; a sanitizer build gets ASAN_RSS_FACTOR times more), and the
transcript says what was wrong.
"""
import pytest

from hostile_dns import HostileDns, world
from hostile_run import (TIMEOUT, assert_not_delivered, assert_rss_below, run_sender)
import hostile_tcp
from hostile_tcp import HostileTcp, Switch

RSS_MIB = 32

# behaviour, what the transcript says about the fetch, the bound on the run (seconds)
CASES = {
    "endless-chunked-body": (hostile_tcp.https_endless_chunked,
                             "MTASTS policy fetch FAILED: body over 65536 bytes "
                             "-> sts-policy-fetch-error", TIMEOUT),
    # The sender asks for no encoding, so libcurl does not inflate: the gzip bytes are
    # the body, and the policy parser refuses them.
    "gzip-bomb": (hostile_tcp.https_gzip_bomb,
                  "MTASTS policy INVALID: line 1, column 4: NUL byte in line "
                  "-> sts-policy-invalid", TIMEOUT),
    "100k-header-lines": (hostile_tcp.https_100k_headers,
                          "MTASTS policy fetch FAILED: response header too large: the header "
                          "section is over 32768 bytes (STS_FETCH_MAX_HEADER) "
                          "-> sts-policy-fetch-error", TIMEOUT),
    # --timeout (TIMEOUT) bounds the whole fetch, not only each stage of an SMTP session:
    # the dripped body ends there, far below the --time-limit of 20 s.
    "dripped-body": (hostile_tcp.https_dripped_body,
                     "MTASTS policy fetch FAILED: Operation timed out after",
                     TIMEOUT + 2),
}


@pytest.fixture(scope="module")
def bomb():
    return hostile_tcp.gzip_bomb(32)


def hostile_host(pki, behaviour, bomb):
    https = HostileTcp(behaviour, *pki.server, tls=True)
    https.bomb = bomb
    return https


def send(ststest_bin, pki, dns, https, smtp, *extra):
    return run_sender(ststest_bin, "--dns", dns.addr, "--ca-file", str(pki.ca_file),
                      "--https-port", str(https.port), "--smtp-port", str(smtp.port), *extra,
                      time_limit=20)


def assert_refused_in_clear(run, ststest_bin, smtp, case):
    _, says, bound = CASES[case]
    assert_not_delivered(run, "deferred", bound=bound)
    assert_rss_below(run, ststest_bin, RSS_MIB)
    assert says in run.stderr, run.stderr
    assert not {"MAIL", "RCPT", "DATA"} & set(smtp.received), smtp.received
    if case == "dripped-body":
        # It ended at --timeout: not before, and not at the time limit.
        assert run.elapsed >= TIMEOUT - 0.1, f"took {run.elapsed:.1f} s\n{run.stderr}"
        assert "TIME LIMIT" not in run.stderr, run.stderr


@pytest.mark.parametrize("case", CASES)
def test_hostile_policy_host_require_tls(ststest_bin, pki, bomb, case):
    https = hostile_host(pki, CASES[case][0], bomb)
    smtp = HostileTcp(hostile_tcp.smtp_plain_accepting)
    dns = HostileDns(world("policy"))
    try:
        run = send(ststest_bin, pki, dns, https, smtp, "--no-cache", "--require-tls")
    finally:
        for s in (dns, https, smtp):
            s.close()
    assert_refused_in_clear(run, ststest_bin, smtp, case)
    assert run.result["policy"]["source"] == "none"
    assert https.received == ["GET /.well-known/mta-sts.txt HTTP/1.1"]
    assert run.result["failures"][0] in ("sts-policy-fetch-error", "sts-policy-invalid")
    [mx] = run.mx("mail.example.test")
    assert mx["action"] == "refused" and mx["failure"] == "starttls-not-supported"


@pytest.mark.parametrize("case", CASES)
def test_hostile_policy_host_cached_enforce(ststest_bin, pki, bomb, tmp_path, case):
    cache = tmp_path / "cache.sqlite"
    host = Switch(hostile_tcp.https_policy, CASES[case][0])
    https = hostile_host(pki, host, bomb)
    smtp = HostileTcp(hostile_tcp.smtp_plain_accepting)
    records = world("policy")
    dns = HostileDns(records)
    try:
        first = send(ststest_bin, pki, dns, https, smtp, "--cache", str(cache))
        assert first.result["policy"]["source"] == "fetched", first.stderr
        assert first.result["policy"]["mode"] == "enforce"
        assert first.result["outcome"] == "deferred" and first.returncode == 75
        # A new id announces a new policy; the host that serves it is hostile now.
        dns.records[("_mta-sts.example.test", "TXT")] = [
            ("rdata", '"v=STSv1; id=20240202T000000;"')]
        host.switch()
        run = send(ststest_bin, pki, dns, https, smtp, "--cache", str(cache))
    finally:
        for s in (dns, https, smtp):
            s.close()
    assert_refused_in_clear(run, ststest_bin, smtp, case)
    assert len(https.received) == 2
    # The cached enforce policy stays in force (RFC 8461 5.1).
    assert run.result["policy"]["source"] == "cache"
    assert run.result["policy"]["mode"] == "enforce"
    [mx] = run.mx("mail.example.test")
    assert mx["action"] == "refused" and mx["failure"] == "starttls-not-supported"
