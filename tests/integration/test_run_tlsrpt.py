"""`ststest run` with report steps (RFC 8460): our own `report --deliver` over the case's
report store, and `--report-cmd` with an independent delivery (tlsrpt_peer.py: Python's
standard library, dnspython and dkimpy) given the placeholders; `expect.tlsrpt` and `exit`
judged with clear difference lines; report steps unsupported for `--sender-cmd` without
`--report-cmd`."""
import json
import pathlib
import subprocess
import sys
import textwrap

from conftest import SRC, scenario_file

PEER = pathlib.Path(__file__).with_name("tlsrpt_peer.py")

SCENARIO = textwrap.dedent("""
    name: run-tlsrpt
    about: One delivery, then the next day's report to both endpoints.
    refs: [RFC 8460 5]
    domain: example.test
    dns: |
      @ MX 10 mail
      _mta-sts TXT "v=STSv1; id=1;"
    policy: {mode: enforce, mx: [mail.example.test]}
    mx:
      mail.example.test: {cert: {expired: true}}
    tlsrpt:
      https: {host: reports.example.test}
      mailto: {address: tlsrpt@example.test}
      submitter: reporter.test
      selector: s1
    steps:
      - name: day
        expect: {enforce: {outcome: deferred, failures: [certificate-expired]}}
      - name: deliver
        advance: 1d
        report: deliver
        expect:
          enforce:
            exit: %(exit)s
            tlsrpt: {reports: 2, valid: true, via: [https, mailto], dkim: pass,
                     policies: [{policy_type: sts, policy_domain: example.test,
                                 successful: 0, failed: %(failed)s,
                                 result_types: [%(rt)s]}]}
    """)


def run(ststest_bin, tmp_path, *args, exit_=0, failed=1, rt="certificate-expired"):
    path = scenario_file(tmp_path, "run-tlsrpt", SCENARIO % {"exit": exit_, "failed": failed,
                                                            "rt": rt})
    out = tmp_path / "run.json"
    r = subprocess.run([ststest_bin, "run", "--json", str(out), *args, str(path)],
                       capture_output=True, text=True, timeout=300)
    return r, json.loads(out.read_text()) if out.exists() else None


def peer_cmd(tmp_path, failed=1):
    return (f"{sys.executable} {PEER} --dns {{dns}} --ca {{ca}} --smtp-port {{smtp_port}} "
            f"--domain {{domain}} --day {{day}} --submitter {{submitter}} "
            f"--dkim-key {{dkim_key}} --dkim-selector {{dkim_selector}} --failed {failed} "
            f"--argv-file {tmp_path}/argv.json "
            f"--result-type certificate-expired # {{report_store}} {{report_dir}} {{timeout}}")


def test_our_report_command(ststest_bin, tmp_path):
    r, doc = run(ststest_bin, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [case] = doc["cases"]
    deliver = case["actual"]["steps"][1]["actual"]
    assert deliver["exit"] == 0
    t = deliver["tlsrpt"]
    assert t["reports"] == 2 and t["valid"] is True and t["via"] == ["https", "mailto"]
    assert t["dkim"] == ["pass"]
    assert t["policies"][0] == t["policies"][1] == [{
        "policy_type": "sts", "policy_domain": "example.test", "successful": 0, "failed": 1,
        "result_types": ["certificate-expired"]}]


def test_differences_are_named(ststest_bin, tmp_path):
    r, doc = run(ststest_bin, tmp_path, exit_=75, failed=3, rt="starttls-not-supported")
    assert r.returncode == 1
    [case] = doc["cases"]
    diffs = case["differences"]
    assert "step 2 (deliver): exit: expected 75, got 0" in diffs, diffs
    assert ("step 2 (deliver): tlsrpt.policies[0].failed (https report 1): expected 3, got 1"
            in diffs), diffs
    assert ('step 2 (deliver): tlsrpt.policies[0].result_types (mailto report 2): expected '
            '["starttls-not-supported"], got ["certificate-expired"]' in diffs), diffs


def test_report_cmd_with_placeholders(ststest_bin, tmp_path):
    r, doc = run(ststest_bin, tmp_path, "--report-cmd", peer_cmd(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    argv = json.loads((tmp_path / "argv.json").read_text())
    opts = dict(zip(argv[0::2], argv[1::2]))
    assert opts["--domain"] == "example.test" and opts["--submitter"] == "reporter.test"
    assert opts["--dkim-selector"] == "s1" and opts["--dkim-key"].endswith("/dkim.pem")
    assert opts["--day"].count("-") == 2 and opts["--smtp-port"].isdigit()
    # The peer's report counts what the test told it: a wrong count is a difference.
    r, doc = run(ststest_bin, tmp_path, "--report-cmd", peer_cmd(tmp_path, failed=2))
    assert r.returncode == 1
    diffs = doc["cases"][0]["differences"]
    assert ("step 2 (deliver): tlsrpt.policies[0].failed (https report 1): expected 1, got 2"
            in diffs), diffs


def test_sender_cmd_needs_report_cmd(ststest_bin, tmp_path):
    naive = SRC / "tests" / "integration" / "naive_sender.py"
    cmd = f"{sys.executable} {naive} {{dns_host}} {{dns_port}} {{smtp_port}} {{rcpt}}"
    r, doc = run(ststest_bin, tmp_path, "--sender-cmd", cmd)
    assert r.returncode == 0, r.stdout + r.stderr
    [case] = doc["cases"]
    assert "needs --report-cmd" in case["unsupported"], case
    # --sender-features without tlsrpt: unsupported for that reason.
    r, doc = run(ststest_bin, tmp_path, "--sender-features", "steps,now")
    assert "tlsrpt" in doc["cases"][0]["unsupported"], doc["cases"][0]


def test_report_store_placeholder_for_sender_cmd(ststest_bin, tmp_path):
    """{report_store} reaches --sender-cmd too: ststest as the external sender records
    the day there, and our report command reports it."""
    cmd = (f"{ststest_bin} send --json --dns {{dns}} --ca-file {{ca}} --smtp-port {{smtp_port}} "
           f"--https-port {{https_port}} --report-store {{report_store}} {{ststest_flags}} "
           f"{{rcpt}}")
    ours = (f"{ststest_bin} report --deliver --now {{now}} --report-store {{report_store}} "
            f"--dns {{dns}} --ca-file {{ca}} --smtp-port {{smtp_port}} --submitter {{submitter}} "
            f"--dkim-key {{dkim_key}} --dkim-selector {{dkim_selector}} --out {{report_dir}}")
    r, doc = run(ststest_bin, tmp_path, "--sender-cmd", cmd, "--report-cmd", ours)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_report_cases_fail_a_careless_delivery(ststest_bin, tmp_path):
    """The library's invalid-record and duplicate-record cases pass a delivery that
    sends nothing for them and fail one that reads `v=TLSRPTv2` as a record or takes the
    first of two: a blind spot would pass both."""
    cases = [str(SRC / "scenarios" / f"tlsrpt-record-{n}.yaml") for n in ("invalid", "duplicate")]
    careful = peer_cmd(tmp_path, failed=0)
    for cmd, want in ((careful, 0), (careful.replace(" --failed", " --careless --failed"), 1)):
        out = tmp_path / "run.json"
        r = subprocess.run([ststest_bin, "run", "--json", str(out), "--report-cmd", cmd, *cases],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == want, r.stdout + r.stderr
        doc = json.loads(out.read_text())
        assert len(doc["cases"]) == 2
        for c in doc["cases"]:
            if want:
                assert "step 2 (deliver): tlsrpt.reports: expected 0, got 1" in c["differences"], c
            else:
                assert c["passed"], c


def test_report_mx_cases_fail_a_delivery_that_insists_on_tls(ststest_bin, tmp_path):
    """The report-MX cases (an expired certificate, a broken handshake) pass a delivery
    that sends the report anyway and fail one that sends it only over verified TLS."""
    cases = [str(SRC / "scenarios" / f"tlsrpt-report-mx-{n}.yaml") for n in ("bad-cert", "tls-abort")]
    anyway = peer_cmd(tmp_path, failed=0).replace(" --failed 0", " --successful 1 --failed 0")
    for cmd, want in ((anyway, 0), (anyway.replace(" --failed", " --strict-tls --failed"), 1)):
        out = tmp_path / "run.json"
        r = subprocess.run([ststest_bin, "run", "--json", str(out), "--report-cmd", cmd, *cases],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == want, r.stdout + r.stderr
        for c in json.loads(out.read_text())["cases"]:
            if want:
                assert "step 2 (deliver): exit: expected 0, got 75" in c["differences"], c
                assert "step 2 (deliver): tlsrpt.reports: expected 1, got 0" in c["differences"], c
            else:
                assert c["passed"], c
