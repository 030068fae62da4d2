"""No blind spots (docs/blind-spot-audit.md): every scenario whose point is "this policy
must be rejected" fails a sender that applies the policy anyway.

careless_sts_sender.py applies whatever the policy host serves (any status, Content-Type,
size, certificate, redirect body; TXT record missing, invalid or unreadable), and is
otherwise a working enforce-mode sender (valid-enforce passes with it). Each audited
scenario must FAIL with it, because the policy it should have ignored names only an MX
that does not exist. And each must PASS with it when the served policy names the real MX
again, as these scenarios did before the audit: that is the blind spot the audit closed.
"""
import pathlib
import subprocess

import pytest

from conftest import scenario_path

CARELESS = pathlib.Path(__file__).with_name("careless_sts_sender.py")
CMD = (f"/usr/bin/python3 {CARELESS} {{dns_host}} {{dns_port}} {{smtp_port}} "
       "{https_port} {rcpt}")

# The scenarios changed by the audit: their served policy names only other.example.test.
AUDITED = [
    "dns-txt-servfail", "dns-txt-timeout", "no-sts-record", "policy-404", "policy-bad-cert",
    "policy-cut-off", "policy-missing-max-age", "policy-oversized", "policy-redirect",
    "policy-wrong-content-type", "txt-id-not-alnum", "txt-id-too-long", "txt-missing-id",
    "txt-two-records", "txt-version-not-first",
]
# policy-cut-off was not blind to this sender before the audit (the cut fell inside the
# old mx name, so the truncated name matched nothing); now any prefix of the served name
# misses the real MX, wherever the cut falls.
BLIND_BEFORE = [n for n in AUDITED if n != "policy-cut-off"]
# Already built so that applying the bad policy fails (the only MX has no STARTTLS, or
# the policy has no mx at all): the careless sender must fail them too.
ALREADY_SAFE = [
    "policy-500", "policy-bad-version", "policy-enforce-without-mx", "policy-expired-cert",
    "policy-max-age-not-number", "policy-max-age-over-limit", "policy-missing-version",
    "policy-mx-bad-wildcard", "policy-unknown-ca",
]


def run(binary, *paths):
    return subprocess.run([binary, "run", "-j", "2", "--sender-cmd", CMD, *map(str, paths)],
                          capture_output=True, text=True, timeout=600)


def test_careless_sender_works_where_the_policy_is_good(ststest_bin):
    r = run(ststest_bin, scenario_path("valid-enforce"))
    assert r.returncode == 0, r.stdout[-4000:]
    assert "3 passed, 0 failed" in r.stdout


def test_audited_cases_fail_a_sender_that_applies_the_bad_policy(ststest_bin):
    names = AUDITED + ALREADY_SAFE
    r = run(ststest_bin, *(scenario_path(n) for n in names))
    assert r.returncode == 1, r.stdout[-4000:]
    for n in names:
        assert f"FAIL {n} [enforce]" in r.stdout, f"{n} does not catch the careless sender"
        assert f"PASS {n} [enforce]" not in r.stdout
    assert f"0 passed, {len(names)} failed" in r.stdout
    # It fails for the right reason: it deferred what a correct sender delivers.
    assert r.stdout.count("outcome: expected delivered, got deferred") == len(names)


@pytest.mark.parametrize("name", BLIND_BEFORE)
def test_before_the_audit_the_case_was_blind(ststest_bin, tmp_path, name):
    """The same scenario with the served policy naming the real MX (as before the audit):
    the careless sender delivers as a correct one does. Cases that say `policy_fetched`
    or `policy_abandoned` (the TXT ones, the policy host's certificate) still saw how it
    fetched, but not that it applied what it fetched: nothing else differed."""
    text = scenario_path(name).read_text()
    assert text.count("other.example.test") == 2, "the about text and the policy's mx"
    old = tmp_path / f"{name}.yaml"
    policy_at = text.index("\npolicy:")
    old.write_text(text[:policy_at] + text[policy_at:].replace("other.example.test",
                                                               "mail.example.test"))
    r = run(ststest_bin, old)
    if f"PASS {name} [enforce]" in r.stdout:
        return
    keys = {line.strip().split(":")[0] for line in r.stdout.split("  actual:")[0].splitlines()
            if ": expected " in line}
    # Only how the fetch looked from the policy host, never what the sender did with
    # the message.
    assert keys and keys <= {"policy_fetched", "policy_abandoned"}, r.stdout[-4000:]
