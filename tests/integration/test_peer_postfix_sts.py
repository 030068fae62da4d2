"""A real MTA-STS peer replays our scenarios: Postfix as the sending MTA, with
postfix-mta-sts-resolver (Debian's package) as its TLS policy source, pointed at the fake
world inside a private network namespace (the world on ports 53/25/443 there, and the
namespace's resolv.conf naming the world's DNS server).

The test asserts that the harness ran every case (no ERROR from the runner, no harness
failure from tools/peer-postfix-mta-sts.sh, the world started and Postfix and the daemon
ran), that the peer delivers valid-enforce as a correct sender does in every mode, that
nothing is left behind (namespace, /etc/netns entry, processes), and that every case's
verdict (as expected, the differences, or unsupported and why) is the one the committed
table docs/peer-postfix-mta-sts-results.md gives: a new difference or a fixed one (a peer
upgrade) fails it until the table is regenerated and the difference classified.

The full library takes about 8 minutes through the peer (each case starts a fresh Postfix
and daemon), too slow for every CI run: CI replays SCENARIOS (42 cases, about 2.5 minutes);
STSTEST_PEER_FULL=1 replays the whole library and checks the whole table. The committed
table covers the whole library either way (test_results_table_covers_the_library, which
needs no peer). STSTEST_NO_PEERS=1 skips the peer runs (with that reason); otherwise a
missing peer fails them.
"""
import os
import pathlib
import re
import subprocess

import pytest
import yaml

from conftest import SRC, scenario_path
from peer_postfix_sts import (NetNS, classify, compare_with_table, markdown_table,
                              package_version, parse_table, require_peers, run_peer)

TOOL = SRC / "tools" / "peer-postfix-mta-sts.sh"
TABLE = SRC / "docs" / "peer-postfix-mta-sts-results.md"
FULL = os.environ.get("STSTEST_PEER_FULL") == "1"

# The scenarios that make sense for an MTA with an MTA-STS policy source. Kept to about
# 42 cases (each starts a fresh Postfix and daemon: ~3-4 s) so the test stays under ~3 min.
SCENARIOS = [
    "valid-enforce",          # enforce/testing/none: verified delivery
    "bad-san",                # MX certificate names another host
    "no-starttls",            # MX offers no STARTTLS
    "expired-cert",
    "unknown-ca",
    "mx-not-in-policy",       # the MX is not among the policy's mx patterns
    "mx-fallback",            # first MX fails verification, second is good
    "mx-wildcard-two-labels", # *.example.test must not cover mail.eu.example.test
    "mx-starttls-refused",    # STARTTLS answered 454
    "cert-partial-wildcard",  # m*.example.test is no wildcard a sender accepts
    "policy-404",             # fetch error: no policy, opportunistic delivery
    "no-sts-record",
    "txt-two-records",        # two v=STSv1 records: no policy
    "txt-id-too-long",        # invalid TXT id: no policy
    "policy-missing-max-age",
    "policy-wrong-content-type",
    "policy-redirect",        # redirects must not be followed
    "policy-bad-cert",        # the policy host's certificate is wrong
    "policy-mx-bad-wildcard",
    "null-mx",
    "cache-fetch-failure-keeps-cached",  # two steps: the cached policy survives a failed refresh
    "dns-wrong-source",       # forged DNS answers from another address / port first
    "policy-handshake-abort", # the policy host drops the TLS handshake
    "cert-cn-only",           # a certificate without subjectAltName (a known difference)
    "txt-id-not-alnum",       # an id with a hyphen: no policy (a known difference)
    "require-tls-no-policy",  # the tool declares --require-tls unsupported (exit 76)
]


@pytest.fixture
def peers_required():
    require_peers()


def _library():
    return sorted((SRC / "scenarios").glob("*.yaml"))


def test_postfix_mta_sts_resolver_replays_scenarios(peers_required, ststest_bin, tmp_path, capsys):
    files = _library() if FULL else [scenario_path(n) for n in SCENARIOS]
    missing = [str(f) for f in files if not f.exists()]
    assert not missing, f"scenario files missing: {missing}"

    ns = NetNS()
    try:
        ns.create()
        rows = run_peer(ststest_bin, TOOL, files, tmp_path, ns)
    finally:
        left = ns.close()
    assert not left, f"left over after the peer run: {left}"
    assert not pathlib.Path(f"/etc/netns/{ns.name}").exists()

    versions = {"postfix": package_version("postfix"),
                "postfix-mta-sts-resolver": package_version("postfix-mta-sts-resolver")}
    table = markdown_table(rows, versions)
    (tmp_path / "peer-postfix-mta-sts-results.md").write_text(table)
    with capsys.disabled():
        print(f"\n{table}\n(written to {tmp_path / 'peer-postfix-mta-sts-results.md'})")

    # Every case ran: one row per scenario x mode, none an infrastructure error.
    want = sum(len(_modes(f)) for f in files)
    assert len(rows) == want, f"{len(rows)} cases reported, {want} expected"
    errors = [f"{r.scenario} [{r.mode}]: {r.error or r.harness_error}"
              for r in rows if r.error or r.harness_error]
    assert not errors, "the harness failed (not the peer):\n" + "\n".join(errors) + \
        f"\nlogs: {tmp_path}"
    # Each delivery left a record of what Postfix decided (an unsupported case made none:
    # the tool declined before starting anything, or the runner did not run it).
    norecord = [f"{r.scenario} [{r.mode}]" for r in rows if not r.records and not r.unsupported]
    assert not norecord, f"no Postfix verdict recorded for: {norecord}"

    # The peer works at all: a correct deployment is delivered over verified TLS.
    valid = [r for r in rows if r.scenario == "valid-enforce"]
    assert {r.mode for r in valid} == {"enforce", "testing", "none"}
    for r in valid:
        assert r.passed, f"valid-enforce [{r.mode}]: {r.verdict}: {r.peer_did}"
        assert r.records[-1]["status"] == "sent"
        assert r.records[-1]["tls"].startswith("Verified") or r.mode != "enforce", r.records
    enforce = next(r for r in valid if r.mode == "enforce")
    assert enforce.records[-1]["policy"].startswith("OK secure match=mail.example.test"), \
        enforce.records

    # Every verdict is the committed table's.
    changed = compare_with_table(rows, TABLE.read_text())
    assert not changed, ("the peer's verdicts differ from " + str(TABLE) + " (regenerate it "
                         "from " + str(tmp_path / "peer-postfix-mta-sts-results.md") + " and "
                         "classify the differences in peer_postfix_sts.CLASSIFIED):\n"
                         + "\n".join(changed))


def test_results_table_covers_the_library():
    """The committed table has one row per case of the library (scenario x mode), every
    row that differs is classified (peer deviation, adapter limit or harness fault), and
    no row that is as expected or unsupported carries a classification. Needs no peer."""
    rows = parse_table(TABLE.read_text())
    want = {(yaml.safe_load(f.read_text())["name"], m) for f in _library() for m in _modes(f)}
    assert set(rows) == want, (f"missing: {sorted(want - set(rows))}; "
                               f"not in the library: {sorted(set(rows) - want)}")
    for (scenario, mode), verdict in rows.items():
        c = classify(scenario, mode)
        if verdict.startswith("differs: "):
            assert c, f"{scenario} [{mode}] differs but is not classified: {verdict}"
        else:
            assert verdict == "as expected" or verdict.startswith("unsupported: "), verdict
            assert not c, f"{scenario} [{mode}] is classified but no longer differs"


def _modes(path):
    doc = yaml.safe_load(path.read_text())
    return doc.get("modes") or ["enforce"]


def _send(tmp_path, dns):
    """The tool's `send` with a CA that exists and a DIR that was set up."""
    d = tmp_path / "pf"
    r = subprocess.run([TOOL, "setup", d], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    ca = tmp_path / "ca.pem"
    ca.write_text("not used\n")
    return subprocess.run([TOOL, "send", "--dir", d, "--rcpt", "postmaster@example.test",
                           "--dns", dns, "--ca", ca], capture_output=True, text=True, timeout=30)


def test_tool_needs_dns_on_port_53(peers_required, tmp_path):
    r = _send(tmp_path, "127.9.9.53:10053")
    assert r.returncode == 70, r.stdout + r.stderr
    assert "port 10053" in r.stderr and "--standard-ports" in r.stderr


def test_tool_never_edits_the_host_resolv_conf(peers_required, tmp_path):
    before = pathlib.Path("/etc/resolv.conf").read_bytes()
    r = _send(tmp_path, "127.9.9.53:53")
    assert r.returncode == 70, r.stdout + r.stderr
    assert "not inside a network namespace" in r.stderr, r.stderr
    assert pathlib.Path("/etc/resolv.conf").read_bytes() == before


def test_run_standard_ports_keeps_parallel_cases_apart(peers_required, ststest_bin, tmp_path):
    """`ststest run --standard-ports -j 3`: every case's world on port 53/25/443 of its own
    block, at the same time, inside a namespace; our own sender passes them all."""
    files = [scenario_path(n) for n in ("valid-enforce", "bad-san", "no-starttls")]
    report = tmp_path / "r.json"
    with NetNS(f"ststest-peer-j-{os.getpid()}") as ns:
        r = subprocess.run(ns.argv(ststest_bin, "run", "--standard-ports", "-j", "3", "-v",
                                   "--json", report, *files),
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "9 passed, 0 failed" in r.stdout
    blocks = set(re.findall(r"ready: block (\S+), dns \S+:53,", r.stdout))
    assert len(blocks) == 9, r.stdout[-3000:]


def test_run_standard_ports_needs_root(ststest_bin):
    # As root, drop to nobody first; a user runs it as it is.
    drop = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            if os.geteuid() == 0 else [])
    r = subprocess.run([*drop, ststest_bin, "run", "--standard-ports",
                        SRC / "scenarios" / "valid-enforce.yaml"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 77, r.stdout + r.stderr
    assert "must run as root" in r.stderr
