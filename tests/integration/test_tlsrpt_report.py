"""TLS reports (RFC 8460) end to end on our side: a day of `send` and `check` sessions
against the bundled world records them in a report store (--report-store, --now), then
`ststest report --day` writes one aggregate report per policy domain, which an
independent JSON Schema of RFC 8460 section 4.4 (written here, checked with Debian's
python3-jsonschema) accepts and whose counts are the sessions of that day; `report
--summary` reads them back; `lint --report` validates the RFC's own example, our
reports, gzip and whole messages, and catches mutations."""
import copy
import datetime
import email.message
import email.policy
import gzip
import json
import os
import pathlib
import subprocess

import pytest

from conftest import SRC, run_sender, scenario_path

jsonschema = pytest.importorskip(
    "jsonschema", reason="python3-jsonschema is not installed (scripts/setup-tests.sh installs it)")

RFC_EXAMPLE = SRC / "tests" / "data" / "rfc8460-example.json"

# ---- an independent schema of RFC 8460 section 4.4 ----------------------------------------

RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
COUNT = {"type": "integer", "minimum": 0}
TEXT = {"type": "string"}
NAME = {"type": "string", "minLength": 1}
IP = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
# RFC 8460 4.3: the result types (4.3.1 negotiation, 4.3.2.1 DANE, 4.3.2.2 MTA-STS,
# 4.3.3 general), spelled here from the RFC, not from ststest's table.
RESULT_TYPES = ["starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                "certificate-not-trusted", "validation-failure", "tlsa-invalid",
                "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
                "sts-policy-invalid", "sts-webpki-invalid"]
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["organization-name", "date-range", "contact-info", "report-id", "policies"],
    "additionalProperties": False,
    "properties": {
        "organization-name": NAME,
        "date-range": {
            "type": "object", "required": ["start-datetime", "end-datetime"],
            "additionalProperties": False,
            "properties": {"start-datetime": {"type": "string", "pattern": RFC3339},
                           "end-datetime": {"type": "string", "pattern": RFC3339}}},
        "contact-info": NAME,
        "report-id": NAME,
        "policies": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["policy", "summary"], "additionalProperties": False,
            "properties": {
                "policy": {
                    "type": "object", "required": ["policy-type", "policy-domain"],
                    "additionalProperties": False,
                    "properties": {
                        "policy-type": {"enum": ["tlsa", "sts", "no-policy-found"]},
                        "policy-string": {"type": "array", "items": TEXT},
                        "policy-domain": NAME,
                        "mx-host": {"type": "array", "items": TEXT}}},
                "summary": {
                    "type": "object", "additionalProperties": False,
                    "required": ["total-successful-session-count",
                                 "total-failure-session-count"],
                    "properties": {"total-successful-session-count": COUNT,
                                   "total-failure-session-count": COUNT}},
                "failure-details": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["result-type", "failed-session-count"],
                    "properties": {
                        "result-type": {"enum": RESULT_TYPES},
                        "sending-mta-ip": IP,
                        "receiving-mx-hostname": TEXT,
                        "receiving-mx-helo": TEXT,
                        "receiving-ip": IP,
                        "failed-session-count": COUNT,
                        "additional-information": TEXT,
                        "failure-reason-code": TEXT}}}}}},
    },
}


def schema_errors(doc):
    v = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]


def rfc_example_as_list():
    doc = json.loads(RFC_EXAMPLE.read_text())
    doc["policies"][0]["policy"]["mx-host"] = [doc["policies"][0]["policy"]["mx-host"]]
    return doc


def test_the_schema_is_not_vacuous():
    """The schema accepts the RFC's example (mx-host as the list 4.4 defines) and refuses
    what the RFC does not allow, so that its verdict on our reports means something."""
    assert schema_errors(rfc_example_as_list()) == []
    for mutate in (lambda d: d.pop("report-id"),
                   lambda d: d["policies"][0]["policy"].update({"policy-type": "dane"}),
                   lambda d: d["policies"][0]["summary"].update(
                       {"total-failure-session-count": -1}),
                   lambda d: d["policies"][0]["failure-details"][0].update(
                       {"result-type": "certificate-expiry"}),
                   lambda d: d["policies"][0]["failure-details"][0].update(
                       {"sending-mta-ip": "not-an-ip"}),
                   lambda d: d["date-range"].update({"start-datetime": "2016-04-01"})):
        doc = rfc_example_as_list()
        mutate(doc)
        assert schema_errors(doc), doc


# ---- a day of sessions ---------------------------------------------------------------

TODAY = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)
DAY = TODAY.strftime("%Y-%m-%d")
START = int(TODAY.timestamp())


def at(hours, minutes=0):
    """--now at TODAY + hours:minutes (the world's certificates are valid from a day
    before the real now, so every time of today and of yesterday's last minute is
    inside them)."""
    t = TODAY + datetime.timedelta(hours=hours, minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def renamed(name, domain):
    """The bundled scenario NAME with its domain renamed to DOMAIN (one policy domain per
    world, so that each gets a report of its own)."""
    return scenario_path(name).read_text().replace("example.test", domain)


@pytest.fixture(scope="module")
def day(ststest_bin, module_world_factory, tmp_path_factory):
    """The sessions of one day in a store, and the reports `report --day` built of them:
    {"store", "out", "written" (the --json document), "hosts"}."""
    tmp = tmp_path_factory.mktemp("tlsrpt")
    store = tmp / "store.sqlite"
    out = tmp / "out"
    out.mkdir()
    good = module_world_factory(renamed("valid-enforce", "good.test"))
    bad = module_world_factory(renamed("bad-san", "badsan.test"))
    plain = module_world_factory(renamed("no-starttls", "plain.test"))

    def send(world, when, *args, command="send", target=None):
        return run_sender(ststest_bin, command, world, "--report-store", str(store), "--now",
                          when, *args, target or f"postmaster@{world.ready['domain']}")

    for h in (1, 2, 3):
        assert send(good, at(h)).returncode == 0
    # check's sessions count too; its verdict is warn (exit 1): no _smtp._tls record
    assert send(good, at(4), command="check", target="good.test").returncode == 1
    # enforce: deferred, never delivered (RFC 8461 5); testing: delivered, reported
    assert send(bad, at(5)).returncode == 75
    assert send(bad, at(6)).returncode == 75
    assert send(bad, at(7), "--mode", "testing").returncode == 0
    assert send(plain, at(8), "--mode", "testing").returncode == 0
    # the day before and the day after are other reports
    yesterday = (TODAY - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert send(good, yesterday).returncode == 0
    assert send(bad, at(24, 30)).returncode == 75
    addresses = {w.ready["domain"]: w.ready["hosts"] for w in (good, bad, plain)}
    r = subprocess.run([ststest_bin, "report", "--day", DAY, "--report-store", str(store),
                        "--out", str(out), "--submitter", "sender.test", "--org",
                        "ststest tests", "--contact", "tlsrpt@sender.test", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {"store": store, "out": out, "written": json.loads(r.stdout), "hosts": addresses}


def report_of(day, domain):
    name = f"sender.test!{domain}!{START}!{START + 86399}.json.gz"
    path = day["out"] / name
    assert path.exists(), f"{name} not written: {sorted(os.listdir(day['out']))}"
    return json.loads(gzip.decompress(path.read_bytes())), path


def test_one_report_per_policy_domain_named_as_rfc8460_5_3(day):
    """RFC 8460 5.3: sender "!" policy-domain "!" begin-timestamp "!" end-timestamp
    ".json.gz"; nothing else is left in the folder (no temporary file)."""
    names = sorted(os.listdir(day["out"]))
    assert names == sorted(f"sender.test!{d}!{START}!{START + 86399}.json.gz"
                           for d in ("good.test", "badsan.test", "plain.test")), names
    written = day["written"]
    assert written["day"] == DAY
    assert sorted(w["policy_domain"] for w in written["reports"]) == \
        ["badsan.test", "good.test", "plain.test"]
    for name in names:
        assert gzip.decompress((day["out"] / name).read_bytes())  # a whole gzip stream


@pytest.mark.parametrize("domain", ["good.test", "badsan.test", "plain.test"])
def test_reports_pass_an_independent_schema(day, domain):
    doc, _ = report_of(day, domain)
    assert schema_errors(doc) == [], json.dumps(doc, indent=2)
    assert doc["organization-name"] == "ststest tests"
    assert doc["contact-info"] == "tlsrpt@sender.test"
    assert doc["report-id"] == f"{TODAY:%Y%m%d}.{domain}@sender.test"
    assert doc["date-range"] == {"start-datetime": f"{DAY}T00:00:00Z",
                                 "end-datetime": f"{DAY}T23:59:59Z"}
    assert list(doc) == ["organization-name", "date-range", "contact-info", "report-id",
                         "policies"]


def test_counts_are_the_days_sessions(day):
    good, _ = report_of(day, "good.test")
    assert len(good["policies"]) == 1
    p = good["policies"][0]
    assert p["policy"] == {"policy-type": "sts",
                           "policy-string": ["version: STSv1", "mode: enforce",
                                             "mx: mail.good.test", "max_age: 86400"],
                           "policy-domain": "good.test", "mx-host": ["mail.good.test"]}
    # three deliveries and one check today; yesterday's session is not in it
    assert p["summary"] == {"total-successful-session-count": 4,
                            "total-failure-session-count": 0}
    assert "failure-details" not in p

    bad, _ = report_of(day, "badsan.test")
    p = bad["policies"][0]
    assert p["policy"]["policy-type"] == "sts"
    assert p["summary"] == {"total-successful-session-count": 0,
                            "total-failure-session-count": 3}
    [fd] = p["failure-details"]
    assert fd["result-type"] == "certificate-host-mismatch"
    assert fd["failed-session-count"] == 3
    assert fd["receiving-mx-hostname"] == "mail.badsan.test"
    assert fd["receiving-ip"] == day["hosts"]["badsan.test"]["mail.badsan.test"]
    assert fd["sending-mta-ip"] == "127.0.0.1"
    # the name in the MX's EHLO reply (the world's MX answers "250-<its host> Hello")
    assert fd["receiving-mx-helo"] == "mail.badsan.test"

    plain, _ = report_of(day, "plain.test")
    p = plain["policies"][0]
    assert p["summary"] == {"total-successful-session-count": 0,
                            "total-failure-session-count": 1}
    assert [f["result-type"] for f in p["failure-details"]] == ["starttls-not-supported"]
    assert p["failure-details"][0]["receiving-mx-helo"] == "mail.plain.test"


def test_lint_accepts_our_reports_without_a_remark(day, ststest_bin):
    for name in os.listdir(day["out"]):
        r = subprocess.run([ststest_bin, "lint", str(day["out"] / name)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "warning" not in r.stdout and "error" not in r.stdout, r.stdout
        assert "valid TLS report (RFC 8460 4) (gzip)" in r.stdout


def test_the_day_built_again_is_the_same(day, ststest_bin, tmp_path):
    """The default day is yesterday by --now; building it again gives the same bytes (the
    report ids too), so a rerun never makes a second, different report."""
    r = subprocess.run([ststest_bin, "report", "--report-store", str(day["store"]), "--out",
                        str(tmp_path), "--submitter", "sender.test", "--org", "ststest tests",
                        "--contact", "tlsrpt@sender.test", "--now", at(36)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(day["out"]))
    for name in os.listdir(tmp_path):
        assert (tmp_path / name).read_bytes() == (day["out"] / name).read_bytes(), name
    assert sorted(pathlib.Path(p).name for p in r.stdout.split()) == sorted(os.listdir(tmp_path))


def test_the_next_day_has_its_own_report(day, ststest_bin, tmp_path):
    r = subprocess.run([ststest_bin, "report", "--report-store", str(day["store"]), "--out",
                        str(tmp_path), "--submitter", "sender.test", "--day",
                        (TODAY + datetime.timedelta(days=1)).strftime("%Y-%m-%d")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    [name] = os.listdir(tmp_path)
    doc = json.loads(gzip.decompress((tmp_path / name).read_bytes()))
    assert doc["policies"][0]["policy"]["policy-domain"] == "badsan.test"
    assert doc["policies"][0]["summary"]["total-failure-session-count"] == 1
    assert doc["organization-name"] == "sender.test"  # the default: the submitter
    assert doc["contact-info"] == "postmaster@sender.test"


def test_a_day_without_sessions_writes_nothing(day, ststest_bin, tmp_path):
    r = subprocess.run([ststest_bin, "report", "--report-store", str(day["store"]), "--out",
                        str(tmp_path), "--submitter", "sender.test", "--day", "2001-01-01"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "no session on 2001-01-01" in r.stderr
    assert os.listdir(tmp_path) == []


def test_summary_of_the_day(day, ststest_bin):
    files = [str(day["out"] / n) for n in sorted(os.listdir(day["out"]))]
    r = subprocess.run([ststest_bin, "report", "--summary", "--json", *files],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["reports"] == 3
    doms = {d["policy_domain"]: d for d in s["domains"]}
    assert doms["good.test"]["sessions"] == 4 and doms["good.test"]["failed_sessions"] == 0
    b = doms["badsan.test"]
    assert (b["sessions"], b["successful_sessions"], b["failed_sessions"]) == (3, 0, 3)
    assert b["first_seen"] == f"{DAY}T00:00:00Z" and b["last_seen"] == f"{DAY}T23:59:59Z"
    assert b["result_types"] == [{"result_type": "certificate-host-mismatch",
                                  "failed_sessions": 3, "first_seen": f"{DAY}T00:00:00Z",
                                  "last_seen": f"{DAY}T23:59:59Z"}]
    [mx] = b["mx"]
    assert mx["receiving_mx_hostname"] == "mail.badsan.test" and mx["failed_sessions"] == 3
    r = subprocess.run([ststest_bin, "report", "--summary", *files], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    assert "badsan.test: 3 sessions, 0 successful, 3 failed" in r.stdout
    assert "  MX mail.badsan.test: 3 failed" in r.stdout


# ---- reading what others send ---------------------------------------------------------

def lint(binary, *args, input=None):
    return subprocess.run([binary, "lint", *args], capture_output=True, timeout=30,
                          input=input, text=isinstance(input, str) or input is None)


def test_lint_the_rfc_example(ststest_bin):
    r = lint(ststest_bin, str(RFC_EXAMPLE))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: $.policies[0].policy.mx-host: a single string" in r.stdout
    assert "valid TLS report (RFC 8460 4) (json): organization-name 'Company-X'" in r.stdout
    assert "company-y.example (sts, 5326 successful, 303 failed)" in r.stdout


MUTATIONS = [
    (lambda d: d.pop("date-range"), "$.date-range", "required field missing"),
    (lambda d: d["date-range"].update({"end-datetime": "2016-04-03T00:00:00Z"}),
     "$.date-range", "one UTC day"),
    (lambda d: d["date-range"].update({"start-datetime": "April 1st"}),
     "$.date-range.start-datetime", "not an RFC 3339 date-time"),
    (lambda d: d["policies"][0]["policy"].update({"policy-type": "mta-sts"}),
     "$.policies[0].policy.policy-type", "not an RFC 8460 4.4 policy type"),
    (lambda d: d["policies"][0]["failure-details"][1].update({"result-type": "no-starttls"}),
     "$.policies[0].failure-details[1].result-type", "not an RFC 8460 4.3 result type"),
    (lambda d: d["policies"][0]["summary"].update({"total-successful-session-count": 1.5}),
     "$.policies[0].summary.total-successful-session-count", "must be a non-negative integer"),
    (lambda d: d["policies"][0]["failure-details"][2].update({"failed-session-count": -3}),
     "$.policies[0].failure-details[2].failed-session-count", "not -3"),
    (lambda d: d["policies"][0]["failure-details"][2].update({"receiving-ip": "203.0.113"}),
     "$.policies[0].failure-details[2].receiving-ip", "not an IPv4 or IPv6 address"),
    (lambda d: d.update({"policies": []}), "$.policies", "names no policy"),
]


@pytest.mark.parametrize("mutate,path,msg", MUTATIONS)
def test_lint_catches_a_mutation(ststest_bin, mutate, path, msg):
    doc = json.loads(RFC_EXAMPLE.read_text())
    mutate(doc)
    r = lint(ststest_bin, "-", input=json.dumps(doc))
    assert r.returncode == 65, r.stdout
    assert f"<stdin>: error: {path}: " in r.stdout and msg in r.stdout, r.stdout
    assert "<stdin>: invalid TLS report (RFC 8460 4)" in r.stdout
    j = lint(ststest_bin, "--report", "--json", "-", input=json.dumps(doc))
    doc = json.loads(j.stdout)
    assert j.returncode == 65 and doc["valid"] is False and doc["report"] is None
    assert any(e["path"] == path and msg in e["message"] for e in doc["errors"]), doc


def test_lint_a_json_syntax_error_has_line_and_column(ststest_bin):
    r = lint(ststest_bin, "-", input='{\n  "organization-name": "x",,\n}\n')
    assert r.returncode == 65
    assert r.stdout.startswith("<stdin>:2:28: error: not valid JSON"), r.stdout
    r = lint(ststest_bin, "-", input='{"report-id": "a",\n "report-id": "b"}')
    assert "<stdin>:2:12: error: not valid JSON: duplicate object key" in r.stdout, r.stdout


def report_message(payload, ctype="application/tlsrpt+gzip", filename=None):
    """A report as RFC 8460 5.3 mails it, built with Python's email package."""
    m = email.message.EmailMessage(policy=email.policy.SMTP)
    m["From"] = "tlsrpt@company-x.example"
    m["To"] = "tlsrpt@company-y.example"
    m["Subject"] = ("Report Domain: company-y.example Submitter: company-x.example "
                    "Report-ID: <5065427c-23d3-47ca-b6e0-946ea0e8c4be@company-x.example>")
    m["TLS-Report-Domain"] = "company-y.example"
    m["TLS-Report-Submitter"] = "company-x.example"
    m.set_content("This is an aggregate TLS report from company-x.example.")
    maintype, subtype = ctype.split("/")
    m.add_attachment(payload, maintype=maintype, subtype=subtype,
                     filename=filename or "company-x.example!company-y.example!1459468800!"
                                          "1459555199.json.gz")
    m.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"; boundary="%s"'
                     % m.get_boundary())
    return m.as_bytes()


def test_lint_gzip_and_whole_messages(ststest_bin, tmp_path):
    doc = rfc_example_as_list()
    gz = gzip.compress(json.dumps(doc).encode())
    (tmp_path / "r.json.gz").write_bytes(gz)
    r = lint(ststest_bin, str(tmp_path / "r.json.gz"))
    assert r.returncode == 0 and "(gzip)" in r.stdout and "warning" not in r.stdout, r.stdout
    (tmp_path / "r.eml").write_bytes(report_message(gz))
    r = lint(ststest_bin, str(tmp_path / "r.eml"))
    assert r.returncode == 0 and "(message)" in r.stdout, r.stdout
    # a message whose report part is invalid: the finding, exit 65
    bad = copy.deepcopy(doc)
    bad["policies"][0]["policy"]["policy-type"] = "DANE"
    (tmp_path / "bad.eml").write_bytes(report_message(gzip.compress(json.dumps(bad).encode())))
    r = lint(ststest_bin, str(tmp_path / "bad.eml"))
    assert r.returncode == 65 and "$.policies[0].policy.policy-type" in r.stdout, r.stdout
    # a message without a report, and a corrupt gzip
    m = email.message.EmailMessage()
    m["From"] = "someone@example.test"
    m["Subject"] = "hello"
    m.set_content("not a report")
    r = lint(ststest_bin, "--report", "-", input=m.as_bytes())
    assert r.returncode == 65 and b"without a report part" in r.stdout, r.stdout
    r = lint(ststest_bin, "-", input=gz[:-10])
    assert r.returncode == 65 and b"corrupt gzip stream" in r.stdout, r.stdout
    # report --summary reads messages too
    r = subprocess.run([ststest_bin, "report", "--summary", str(tmp_path / "r.eml"),
                        str(tmp_path / "bad.eml")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 65
    assert "bad.eml: not a valid RFC 8460 report" in r.stderr
    assert "company-y.example: 5629 sessions, 5326 successful, 303 failed; 1 report" in r.stdout


def test_a_policy_file_is_still_a_policy(ststest_bin):
    r = lint(ststest_bin, "-", input="version: STSv1\nmode: testing\nmx: mail.example.test\n"
                                     "max_age: 86400\n")
    assert r.returncode == 0 and "valid MTA-STS policy" in r.stdout, r.stdout


# ---- usage -------------------------------------------------------------------------------

@pytest.mark.parametrize("args,msg", [
    (["--day", "2030-1-1"], "--day '2030-1-1' is not a date"),
    (["--day", "2030-02-30"], "is not a date"),
    (["--submitter", "not a domain"], "is not a domain name"),
    (["--out", "/nonexistent/dir", "--submitter", "s.test"], "not a directory"),
    (["--summary"], "--summary needs at least one FILE"),
    (["--summary", "--day", "2030-01-01", "x"], "--summary reads FILEs"),
    (["extra"], "unexpected argument 'extra'"),
    (["--now", "yesterday"], "--now 'yesterday'"),
    (["--now", "2030-02-30T00:00:00Z"], "--now '2030-02-30T00:00:00Z'"),
])
def test_report_usage_errors(ststest_bin, args, msg):
    r = subprocess.run([ststest_bin, "report", *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 64, r.stderr
    assert msg in r.stderr, r.stderr


def test_report_store_errors(ststest_bin, tmp_path):
    bad = tmp_path / "not-a-db"
    bad.write_text("x" * 200)
    r = subprocess.run([ststest_bin, "report", "--report-store", str(bad), "--out",
                        str(tmp_path), "--submitter", "s.test"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 65 and "not an SQLite database" in r.stderr, r.stderr
    r = subprocess.run([ststest_bin, "report", "--report-store", str(tmp_path / "typo.sqlite"),
                        "--out", str(tmp_path), "--submitter", "s.test"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 65 and "No such file or directory (send and check create it)" \
        in r.stderr, r.stderr
    assert not (tmp_path / "typo.sqlite").exists()
    link = tmp_path / "link.sqlite"
    link.symlink_to(tmp_path / "elsewhere")
    r = subprocess.run([ststest_bin, "check", "--no-cache", "--report-store", str(link),
                        "--dns", "127.0.0.1:9", "example.test"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 65 and "is a symbolic link" in r.stderr, r.stderr
    assert not (tmp_path / "elsewhere").exists()
    r = subprocess.run([ststest_bin, "send", "--report-store", "x", "--no-report-store",
                        "a@example.test"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 64 and "exclude each other" in r.stderr
