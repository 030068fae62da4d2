"""`ststest run`: replaying scenarios against the bundled world, through the binary."""
import json
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import SRC, scenario_path

VALID = scenario_path("valid-enforce")


def run(binary, *args, timeout=300):
    return subprocess.run([binary, "run", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_valid_enforce_passes_in_every_mode(ststest_bin, tmp_path):
    junit, report = tmp_path / "r.xml", tmp_path / "r.json"
    r = run(ststest_bin, "--junit", junit, "--json", report, VALID)
    assert r.returncode == 0, r.stdout + r.stderr
    for mode in ("enforce", "testing", "none"):
        assert f"PASS valid-enforce [{mode}]" in r.stdout
    assert "3 passed, 0 failed" in r.stdout

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert sorted(tc.get("name") for tc in suite.iter("testcase")) == ["enforce", "none", "testing"]

    doc = json.loads(report.read_text())
    assert doc["passed"] == 3 and doc["failed"] == 0
    enforce = next(c for c in doc["cases"] if c["mode"] == "enforce")
    assert enforce["actual"]["outcome"] == "delivered"
    assert enforce["actual"]["tls"] == "verified"
    assert enforce["actual"]["received"] == 1
    assert enforce["actual"]["policy_source"] == "fetched"
    assert enforce["actual"]["delivered_to"] == ["mail.example.test"]


def test_changed_expectation_fails_with_a_clear_diff(ststest_bin, tmp_path):
    text = VALID.read_text().replace(
        "enforce: {outcome: delivered, tls: verified, failures: [], received: 1",
        "enforce: {outcome: deferred, tls: verified, failures: [], received: 0")
    assert "outcome: deferred" in text
    f = tmp_path / "changed.yaml"
    f.write_text(text)
    junit = tmp_path / "r.xml"
    r = run(ststest_bin, "--junit", junit, f)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL valid-enforce [enforce]" in r.stdout
    assert "outcome: expected deferred, got delivered" in r.stdout
    assert "received: expected 0, got 1" in r.stdout
    assert "transcript:" in r.stdout
    assert "PASS valid-enforce [testing]" in r.stdout
    assert "2 passed, 1 failed" in r.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "1"
    failed = [tc for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert [tc.get("name") for tc in failed] == ["enforce"]
    assert "outcome: expected deferred, got delivered" in failed[0].find("failure").text


def test_bad_scenario_file_runs_nothing(ststest_bin, tmp_path):
    good = tmp_path / "a-good.yaml"
    good.write_text(VALID.read_text())
    bad = tmp_path / "b-bad.yaml"
    bad.write_text(VALID.read_text().replace("modes: [enforce, testing, none]",
                                             "modes: [enforce, testing, none]\nbogus: 1"))
    r = run(ststest_bin, tmp_path)
    assert r.returncode == 65, r.stdout + r.stderr
    assert f"{bad}:" in r.stderr and "unknown key 'bogus'" in r.stderr
    assert "nothing was run" in r.stderr
    assert "PASS" not in r.stdout


def test_refs_section_that_does_not_exist_is_a_load_error(ststest_bin, tmp_path):
    """A refs entry naming a section that RFC 5321 does not have stops the load, with
    the file, line, column, the entry and the section; nothing is run."""
    lines = VALID.read_text().splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("refs:"))
    lines[at] = "refs: [RFC 5321 5.1, RFC 5321 4.9]"  # 5321 has 4.1 to 4.5 and no 4.9
    bad = tmp_path / "bad-ref.yaml"
    bad.write_text("\n".join(lines) + "\n")
    r = run(ststest_bin, bad)
    assert r.returncode == 65, r.stdout + r.stderr
    col = lines[at].index("RFC 5321 4.9") + 1
    assert (f"{bad}:{at + 1}:{col}: refs: 'RFC 5321 4.9': RFC 5321 has no section 4.9"
            in r.stderr), r.stderr
    assert "nothing was run" in r.stderr
    assert "PASS" not in r.stdout
    # --list loads the file the same way.
    r = run(ststest_bin, "--list", bad)
    assert r.returncode == 65 and "RFC 5321 has no section 4.9" in r.stderr
    # The existing sections load and run.
    lines[at] = "refs: [RFC 5321 5.1, RFC 5321 4.1.1.1, RFC 5321]"
    bad.write_text("\n".join(lines) + "\n")
    r = run(ststest_bin, "--list", bad)
    assert r.returncode == 0, r.stderr
    assert "refs: RFC 5321 5.1; RFC 5321 4.1.1.1; RFC 5321" in r.stdout
    assert "not checked" not in r.stdout


def test_refs_of_rfcs_without_a_verified_table_are_listed_as_not_checked(ststest_bin, tmp_path):
    """RFC 7672's sections could not be verified (common/rfcref.c): its refs load, and
    --list says they were not checked instead of guessing; RFC 6125 6.4.3 is checked (the
    wildcard rules), and so are RFC 8461's."""
    r = run(ststest_bin, "--list", scenario_path("cert-wildcard"), VALID)
    assert r.returncode == 0, r.stderr
    assert "RFC 6125 6.4.3" in r.stdout
    assert "not checked" not in r.stdout
    text = scenario_path("cert-wildcard").read_text().replace("RFC 6125 6.4.3", "RFC 7672 2.2")
    assert "RFC 7672 2.2" in text
    f = tmp_path / "dane-ref.yaml"
    f.write_text(text)
    r = run(ststest_bin, "--list", f)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("refs not checked: RFC 7672: sections not known") == 1
    assert "RFC 8461: sections not known" not in r.stdout


def test_list_and_filter(ststest_bin):
    r = run(ststest_bin, "--list", SRC / "scenarios")
    assert r.returncode == 0, r.stderr
    assert "valid-enforce" in r.stdout and "refs: RFC 8461 3.1" in r.stdout
    r = run(ststest_bin, "--list", "--filter", "valid-*", SRC / "scenarios")
    assert r.returncode == 0
    names = [l.split()[0] for l in r.stdout.splitlines() if l and not l.startswith(" ")]
    assert names == ["valid-enforce"]


def listed(stdout):
    return [l.split()[0] for l in stdout.splitlines() if l and not l.startswith(" ")]


def test_exclude(ststest_bin, tmp_path):
    everything = listed(run(ststest_bin, "--list", SRC / "scenarios").stdout)
    # Repeatable, any match leaves a scenario out; --list honours it.
    r = run(ststest_bin, "--list", "--exclude", "dns-*", "--exclude", "*-cert*",
            SRC / "scenarios")
    assert r.returncode == 0, r.stderr
    names = listed(r.stdout)
    assert names == [n for n in everything
                     if not n.startswith("dns-") and "-cert" not in n]
    assert "valid-enforce" in names and "bad-san" in names
    # With --filter: what the filter keeps, minus what any --exclude matches.
    r = run(ststest_bin, "--list", "--filter", "txt-*", "--exclude", "*-id-*",
            SRC / "scenarios")
    assert listed(r.stdout) == [n for n in everything
                                if n.startswith("txt-") and "-id-" not in n]
    # An excluded case does not run.
    r = run(ststest_bin, "--exclude", "bad-*", scenario_path("bad-san"), VALID)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bad-san" not in r.stdout
    assert "PASS valid-enforce [enforce]" in r.stdout
    assert "3 passed, 0 failed (1 scenarios" in r.stdout


def slow_greeting_library(folder, n, delay):
    """n scenarios whose MX waits `delay` seconds before its greeting (waiting cases),
    and valid-enforce (three cases that only compute)."""
    folder.mkdir()
    text = scenario_path("mx-slow-greeting").read_text()
    assert "name: mx-slow-greeting\n" in text and "{greeting: 1.5}" in text
    for i in range(n):
        (folder / f"z-slow{i}.yaml").write_text(  # after valid-enforce in file order
            text.replace("name: mx-slow-greeting\n", f"name: slow-{i}\n")
                .replace("{greeting: 1.5}", f"{{greeting: {delay}}}"))
    shutil.copy(VALID, folder / "valid-enforce.yaml")


def test_waiting_cases_run_besides_the_cpus_by_default(ststest_bin, tmp_path):
    """By default a case whose world keeps the sender waiting gets a lane of its own:
    8 greetings delayed 1 s overlap instead of taking 8 s / CPUs (4 s on 2 CPUs)."""
    lib, report = tmp_path / "lib", tmp_path / "r.json"
    slow_greeting_library(lib, 8, 1)
    r = run(ststest_bin, "--json", report, lib)
    assert r.returncode == 0, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("running 11 case(s) from 9 scenario(s), ") and \
        first.endswith(" at a time and 8 that wait besides"), first
    doc = json.loads(report.read_text())
    slow = [c for c in doc["cases"] if c["scenario"].startswith("slow-")]
    assert len(slow) == 8 and all(c["passed"] for c in slow)
    # Each one really waited for its greeting, and yet the run did not add them up.
    assert all(c["seconds"] >= 1.0 for c in slow), [c["seconds"] for c in slow]
    assert doc["seconds"] < 3.5, doc["seconds"]


def test_explicit_jobs_means_exactly_that_many(ststest_bin, tmp_path):
    """-j N: N cases at once whatever they do (a peer behind one resolver needs -j 1)."""
    lib = tmp_path / "lib"
    slow_greeting_library(lib, 2, 0.3)
    r = run(ststest_bin, "-j", "1", lib)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "running 5 case(s) from 3 scenario(s), 1 at a time"
    # One at a time, the waiting ones first.
    order = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("PASS ")]
    assert order == ["slow-0", "slow-1", "valid-enforce", "valid-enforce", "valid-enforce"]


@pytest.mark.parametrize("args,msg", [
    ([], "no PATH given, and no installed scenario library"),
    (["--exclude", "x"] * 65 + ["x"], "--exclude: at most 64"),
    (["--jobs", "0", "x"], "--jobs"),
    (["--timeout", "nan", "x"], "--timeout"),
    (["--bogus", "x"], "unrecognized option"),
])
def test_usage_errors(ststest_bin, args, msg):
    r = run(ststest_bin, *args)
    assert r.returncode == 64
    assert msg in r.stderr


def test_no_path_replays_the_installed_library(ststest_bin, tmp_path):
    """`run` alone replays PREFIX/share/ststest/scenarios, PREFIX being the folder above
    the binary's: as `cmake --install` and the .deb lay it out."""
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    lib = prefix / "share" / "ststest" / "scenarios"
    lib.mkdir(parents=True)
    shutil.copy(ststest_bin, prefix / "bin" / "ststest")
    shutil.copy(scenario_path("valid-enforce"), lib)
    shutil.copy(scenario_path("bad-san"), lib)
    r = run(prefix / "bin" / "ststest", "--list")
    assert r.returncode == 0, r.stderr
    names = sorted(l.split()[0] for l in r.stdout.splitlines() if l and not l.startswith(" "))
    assert names == ["bad-san", "valid-enforce"]
    r = run(prefix / "bin" / "ststest")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 passed, 0 failed" in r.stdout
    # Without the library the error names both places looked at.
    shutil.rmtree(prefix / "share")
    r = run(prefix / "bin" / "ststest")
    assert r.returncode == 64
    assert f"{prefix}/share/ststest/scenarios" in r.stderr


def test_missing_path(ststest_bin, tmp_path):
    r = run(ststest_bin, tmp_path / "nope.yaml")
    assert r.returncode == 65
    assert "nope.yaml" in r.stderr


def test_bundled_library_passes(ststest_bin):
    r = run(ststest_bin, SRC / "scenarios", timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " 0 failed" in r.stdout


NAIVE = pathlib.Path(__file__).with_name("naive_sender.py")


def naive_cmd(*flags):
    """naive_sender.py as the --sender-cmd, its FLAGS first."""
    return " ".join(["/usr/bin/python3", str(NAIVE), *flags,
                     "{dns_host} {dns_port} {smtp_port} {rcpt}"])


def ours_cmd(binary):
    """Our own sender as the --sender-cmd, judged by its JSON result."""
    return (f"{binary} send {{ststest_flags}} --dns {{dns}} --ca-file {{ca}} "
            f"--smtp-port {{smtp_port}} --https-port {{https_port}} --json {{rcpt}}")


def test_external_sender_with_json_result_is_judged_like_ours(ststest_bin):
    r = run(ststest_bin, "--sender-cmd", ours_cmd(ststest_bin), SRC / "scenarios")
    assert r.returncode == 0, r.stdout[-4000:]
    assert " 0 failed" in r.stdout


def test_external_naive_sender_is_caught(ststest_bin, tmp_path):
    """A sender that ignores MTA-STS delivers to a bad-SAN MX under enforce (caught by
    `received: 0`) and sends MAIL in the clear when STARTTLS is missing (caught by the
    security invariant), while its testing/none runs pass."""
    junit = tmp_path / "naive.xml"
    r = run(ststest_bin, "--junit", junit, "--sender-cmd", naive_cmd(),
            scenario_path("bad-san"), scenario_path("no-starttls"))
    assert r.returncode == 1, r.stdout
    out = r.stdout
    assert "FAIL bad-san [enforce]" in out
    assert "received: expected 0, got 1" in out
    assert "FAIL no-starttls [enforce]" in out
    assert "SECURITY INVARIANT: MAIL reached mail.example.test without TLS under enforce" in out
    # The security differences lead, and the rule each expectation enforces follows.
    no_starttls = out[out.index("FAIL no-starttls [enforce]"):]
    no_starttls = no_starttls[:no_starttls.index("  actual:")]
    assert no_starttls.index("  security differences:") < no_starttls.index("  other differences:")
    assert "  why: RFC 8461 4.2 and 5: under enforce an MX without STARTTLS" in no_starttls
    assert "  why: RFC 8461 4.2: the MX certificate must name the MX host" in out
    for case in ("bad-san [testing]", "bad-san [none]", "no-starttls [testing]",
                 "no-starttls [none]"):
        assert f"PASS {case}" in out
    assert "4 passed, 2 failed" in out
    assert "external: delivered to mail.example.test" in out


def test_sender_that_never_tries_the_policy_host_is_caught(ststest_bin):
    """Under a bad policy-host certificate a correct sender and one that ignores
    MTA-STS deliver alike; policy_abandoned (the world saw an HTTPS connection left
    without a request) tells them apart."""
    case = scenario_path("policy-unknown-ca")
    r = run(ststest_bin, "--sender-cmd", naive_cmd(), case)
    assert r.returncode == 1, r.stdout
    assert "policy_abandoned: expected true, got false" in r.stdout
    r = run(ststest_bin, "--sender-cmd", ours_cmd(ststest_bin), case)
    assert r.returncode == 0, r.stdout
    assert "1 passed, 0 failed" in r.stdout


def test_first_answer_resolver_is_caught_by_wrong_source(ststest_bin):
    """A resolver that checks the message ID but takes the first answer from any
    address passes dns-wrong-id and is led to the attacker's MX by dns-wrong-source
    (RFC 5452 9.1)."""
    r = run(ststest_bin, "--sender-cmd", naive_cmd("--first-answer"),
            scenario_path("dns-wrong-source"), scenario_path("dns-wrong-id"))
    assert r.returncode == 1, r.stdout
    out = r.stdout
    assert "PASS dns-wrong-id [enforce]" in out
    assert "FAIL dns-wrong-source [enforce]" in out
    assert "outcome: expected delivered, got deferred" in out
    assert "spoofed.invalid" in out
    assert "1 passed, 1 failed" in out


def test_external_sender_gets_the_scenario_dns_timeout(ststest_bin):
    """{dns_timeout} is the scenario's sender.dns_timeout (else our default, 10), and
    {ststest_flags} carries it as --dns-timeout when the scenario sets it."""
    cmd = "echo dns_timeout={dns_timeout} flags: {ststest_flags} >&2; exit 75"
    r = run(ststest_bin, "-v", "--sender-cmd", cmd, scenario_path("dns-mx-timeout"))
    assert r.returncode == 0, r.stdout
    assert "PASS dns-mx-timeout [enforce]" in r.stdout
    [line] = [l for l in r.stdout.splitlines() if "external (stderr): dns_timeout=" in l]
    assert "dns_timeout=2 flags:" in line and line.endswith(" --dns-timeout 2"), line
    r = run(ststest_bin, "-v", "--sender-cmd", cmd, VALID)
    lines = [l for l in r.stdout.splitlines() if "external (stderr): dns_timeout=" in l]
    assert len(lines) == 3, r.stdout
    assert all("dns_timeout=10 flags:" in l and "--dns-timeout" not in l for l in lines), lines


def test_external_sender_time_limit(ststest_bin):
    r = run(ststest_bin, "--sender-cmd", "sleep 30", "--time-limit", "1", VALID, "--filter",
            "valid-enforce", timeout=120)
    assert r.returncode == 1
    assert "ERROR valid-enforce [enforce]" in r.stdout
    assert "ran over the time limit of 1 s" in r.stdout
