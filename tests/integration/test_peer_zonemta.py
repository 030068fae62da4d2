"""A second real MTA-STS peer under regression: ZoneMTA's outbound path (mx-connect with
mailauth's MTA-STS, nodemailer's smtp-connection, ZoneMTA's bounce rules) through the
adapter tools/zonemta/send.js, replaying the whole scenario library.

The differences between the peer and the library are recorded, classified, in
docs/peer-zonemta-results.md. This test fails when the run no longer matches that table:
a new difference, a difference that went away (a peer upgrade fixed it) or one that changed,
so that an upgrade of the pinned modules shows up as a diff to review. It also fails when
the harness could not run a case (a runner ERROR, the adapter's own failure: exit 70) or
when the peer does not deliver valid-enforce over verified TLS.

Runs as any user (the adapter is given the world's DNS server, ports and CA: no namespace),
about 45 s with -j 2. STSTEST_NO_PEERS=1 skips it (with that reason); otherwise a missing
node or missing modules fail it, naming scripts/install-peers.sh.
"""
import json
import os

import pytest

from peer_zonemta import (OPT_OUT, RESULTS, compare, doc_rows, installed_versions,
                          node_path, run_library, run_rows, zonemta_problem)
from conftest import SRC

ADAPTER_FAILED = 70


@pytest.fixture
def zonemta_required():
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(f"{OPT_OUT}=1: the ZoneMTA peer test disabled")
    why = zonemta_problem()
    if why:
        pytest.fail(f"cannot run the ZoneMTA peer: {why} (set {OPT_OUT}=1 to skip it)")


def test_results_page_lists_its_differences():
    """The page parses: one row per case, each classified. (Runs without node.)"""
    text = RESULTS.read_text()
    rows = doc_rows(text)
    assert len(rows) >= 1, f"no table rows found in {RESULTS}"
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| scenario") and "`" in line:
            cls = line.split("|")[4]
            assert any(c in cls for c in ("peer deviation", "adapter limit", "harness fault")), \
                f"row not classified as peer deviation / adapter limit / harness fault: {line}"
            assert "tools/zonemta/run.sh" in line, f"row without its reproduction command: {line}"


def test_zonemta_replays_the_library(zonemta_required, tmp_path, capsys):
    report_path = tmp_path / "zonemta.json"
    report, out = run_library(report_path, [SRC / "scenarios"], jobs=2,
                              log_path=tmp_path / "run.log")

    errors = [f"{c['scenario']} [{c['mode']}]: {c['error']}" for c in report["cases"] if c.get("error")]
    assert not errors, "the runner could not run these cases:\n" + "\n".join(errors) + \
        f"\nlog: {tmp_path / 'run.log'}"
    adapter = [f"{c['scenario']} [{c['mode']}]" for c in report["cases"]
               if (c.get("actual") or {}).get("exit") == ADAPTER_FAILED]
    assert not adapter, f"the adapter itself failed (exit 70) in: {adapter}; log: {tmp_path / 'run.log'}"

    # The peer works at all: a correct deployment goes out over verified TLS in every mode.
    valid = {c["mode"]: c for c in report["cases"] if c["scenario"] == "valid-enforce"}
    assert set(valid) == {"enforce", "testing", "none"}, valid.keys()
    for mode, c in valid.items():
        assert c["passed"] and c["actual"]["tls"] == "verified", (mode, c)

    run = run_rows(report)
    doc = doc_rows(RESULTS.read_text())
    diff = compare(doc, run)
    with capsys.disabled():
        print(f"\nZoneMTA peer ({json.dumps(installed_versions())}, node {node_path()}): "
              f"{len(report['cases']) - len(run)} of {len(report['cases'])} cases as expected, "
              f"{len(run)} differ; the page lists {len(doc)}")
        for line in diff:
            print("  " + line)
    assert not diff, (
        "the ZoneMTA run no longer matches docs/peer-zonemta-results.md (review, then update "
        "the table; `/usr/bin/python3 tests/integration/peer_zonemta.py REPORT.json` prints "
        f"the rows of a run):\n" + "\n".join(diff) + f"\nreport: {report_path}")


def test_compare_names_new_fixed_and_changed_rows():
    """The comparison can fail, in each direction (no node needed)."""
    from peer_zonemta import signature
    doc = {("a", "enforce"): "outcome=failed", ("b", "enforce"): "policy_fetched=true",
           ("c", "enforce"): "unsupported"}
    run = {("a", "enforce"): "outcome=failed", ("b", "enforce"): "outcome=delivered",
           ("d", "testing"): "tls=none"}
    lines = compare(doc, run)
    assert [ln.split()[0] for ln in lines] == ["CHANGED", "FIXED", "NEW"], lines
    assert compare(doc, dict(doc)) == []
    # The runner's difference strings, and both ways a case can be unsupported.
    case = {"differences": ["step 2 (downgrade-attempt): outcome: expected deferred, got delivered",
                            "tls: expected verified, got (nothing delivered)",
                            "delivered_to: expected [\"mx2.example.test\"], got []"],
            "actual": {"exit": 0}}
    assert signature(case) == "2:outcome=delivered tls=nothing-delivered delivered_to=[]"
    assert signature({"differences": ["exit: expected 75, got 76"], "actual": {"exit": 76}}) == "unsupported"
    assert signature({"result": "unsupported", "differences": []}) == "unsupported"
    structured = {"differences": [{"field": "outcome", "expected": "deferred", "got": "failed", "step": 2}],
                  "actual": {"exit": 69}}
    assert signature(structured) == "2:outcome=failed"
    assert run_rows({"cases": [{"scenario": "r", "mode": "enforce", "passed": True,
                                "result": "unsupported"}]}) == {("r", "enforce"): "unsupported"}
