"""The world's TLSRPT side (RFC 8460, scenario `tlsrpt:`): the published `_smtp._tls`
and DKIM key records (asked with dig), the HTTPS collector (reports POSTed with curl),
the mailbox (report messages sent with swaks, DKIM-signed with dkimpy, Debian's
python3-dkim, with the key the world announces, a tampered copy and a wrong key), and
the observer's `tlsrpt_reports` records, their findings and DKIM verdicts."""
import base64
import copy
import gzip
import json
import subprocess
import textwrap

import pytest

from conftest import need, scenario_file

try:
    import dkim  # python3-dkim (dkimpy)
except ImportError:  # pragma: no cover - setup-tests.sh installs it
    dkim = None

# RFC 8460 4.8's example report, made strictly valid (mx-host a list).
REPORT = {
    "organization-name": "Company-X",
    "date-range": {"start-datetime": "2016-04-01T00:00:00Z",
                   "end-datetime": "2016-04-01T23:59:59Z"},
    "contact-info": "sts-reporting@company-x.example",
    "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
    "policies": [{
        "policy": {"policy-type": "sts",
                   "policy-string": ["version: STSv1", "mode: testing",
                                     "mx: mail.example.test", "max_age: 86400"],
                   "policy-domain": "example.test",
                   "mx-host": ["mail.example.test"]},
        "summary": {"total-successful-session-count": 5326,
                    "total-failure-session-count": 303},
        "failure-details": [{"result-type": "certificate-expired",
                             "sending-mta-ip": "2001:db8:abcd:12::1",
                             "receiving-mx-hostname": "mail.example.test",
                             "failed-session-count": 100}]}]}

SCENARIO = textwrap.dedent("""
    name: world-tlsrpt
    about: The world's TLSRPT endpoints.
    refs: [RFC 8460 3, RFC 8460 5.3]
    domain: example.test
    dns: |
      @ MX 10 mail
      _mta-sts TXT "v=STSv1; id=1;"
    policy: {mode: enforce, mx: [mail.example.test]}
    tlsrpt:
      https: {host: reports.example.test, path: /v1/tlsrpt%s}
      mailto: {address: tlsrpt@example.test}
      submitter: reporter.test
      selector: s1
    expect:
      enforce: {outcome: delivered}
    """)


def start(world_factory, tmp_path, fault=""):
    text = SCENARIO % (f", fault: {fault}" if fault else "")
    return world_factory(scenario_file(tmp_path, "world-tlsrpt", text))


def dig_txt(world, name):
    host, port = world.dns_host_port()
    r = subprocess.run([need("dig"), "+short", "+norec", f"@{host}", "-p", str(port), name, "TXT"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [l for l in r.stdout.splitlines() if l]


def post(world, body, ctype="application/tlsrpt+gzip", path="/v1/tlsrpt", extra=()):
    """curl POSTs body to the collector; returns (exit status, HTTP status or 0)."""
    host = world.ready["hosts"]["reports.example.test"]
    port = world.ready["https_port"]
    cmd = [need("curl"), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
           "--cacert", world.ready["ca_file"],
           "--resolve", f"reports.example.test:{port}:{host}", "--data-binary", "@-", *extra]
    if ctype is not None:
        cmd += ["-H", f"Content-Type: {ctype}"]
    cmd.append(f"https://reports.example.test:{port}{path}")
    r = subprocess.run(cmd, input=body, capture_output=True, timeout=30)
    return r.returncode, int(r.stdout or b"0")


def gz(report):
    return gzip.compress(json.dumps(report).encode())


def names(rec):
    return {f["name"] for f in rec["findings"] if f["severity"] == "error"}


# ---- the records the world publishes ------------------------------------------------

def test_ready_line_and_records(world_factory, tmp_path):
    w = start(world_factory, tmp_path)
    t = w.ready["tlsrpt"]
    assert t["submitter"] == "reporter.test" and t["selector"] == "s1"
    pem = open(t["dkim_key"]).read()
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    port = w.ready["https_port"]
    assert dig_txt(w, "_smtp._tls.example.test") == [
        f'"v=TLSRPTv1; rua=https://reports.example.test:{port}/v1/tlsrpt,'
        f'mailto:tlsrpt@example.test"']
    key = "".join(s.strip('" ') for s in dig_txt(w, "s1._domainkey.reporter.test")[0].split('" "'))
    assert key.startswith("v=DKIM1; k=rsa; p=")
    # The published key is the public half of the PEM the world wrote.
    from cryptography.hazmat.primitives import serialization
    priv = serialization.load_pem_private_key(pem.encode(), None)
    der = priv.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.split("p=", 1)[1] == base64.b64encode(der).decode()
    w.stop()


def test_verbatim_records(world_factory, tmp_path):
    text = textwrap.dedent("""
        name: verbatim
        about: Two records, published as written.
        refs: [RFC 8460 3]
        domain: example.test
        tlsrpt:
          record: ["v=TLSRPTv1; rua=mailto:a@example.test", "v=TLSRPTv1;rua=bogus"]
        expect:
          enforce: {outcome: deferred}
        """)
    w = world_factory(scenario_file(tmp_path, "verbatim", text))
    assert sorted(dig_txt(w, "_smtp._tls.example.test")) == [
        '"v=TLSRPTv1; rua=mailto:a@example.test"', '"v=TLSRPTv1;rua=bogus"']
    # The default submitter and selector.
    assert w.ready["tlsrpt"]["submitter"] == "ststest.test"
    assert dig_txt(w, "ststest._domainkey.ststest.test")
    w.stop()


# ---- the HTTPS collector --------------------------------------------------------------

def test_collector_takes_a_valid_report(world_factory, tmp_path):
    w = start(world_factory, tmp_path)
    assert post(w, gz(REPORT)) == (0, 200)
    obs = w.stop()
    [rec] = obs["tlsrpt_reports"]
    assert rec["via"] == "https" and rec["accepted"] and rec["status"] == 200
    assert rec["content_type"] == "application/tlsrpt+gzip" and rec["gzip"] is True
    assert rec["path"] == "/v1/tlsrpt" and rec["sni"] == "reports.example.test"
    assert rec["valid"] is True and rec["errors"] == 0, rec["findings"]
    assert rec["report"] == REPORT
    assert rec["report_id"] == REPORT["report-id"]
    assert rec["policy_domains"] == ["example.test"]


def test_collector_findings(world_factory, tmp_path):
    w = start(world_factory, tmp_path)
    bad = copy.deepcopy(REPORT)
    bad["policies"][0]["policy"]["policy-type"] = "dane"
    bad["policies"][0]["failure-details"][0]["result-type"] = "cert-expired"
    bad["policies"][0]["summary"]["total-successful-session-count"] = -1
    bad["date-range"]["end-datetime"] = "2016-04-03T00:00:00Z"
    bad["date-range"]["start-datetime"] = "2016-04-01 00:00"
    assert post(w, gz(bad))[1] == 200
    assert post(w, json.dumps(REPORT).encode())[1] == 200          # +gzip, not gzip
    assert post(w, gz(REPORT), ctype="application/json")[1] == 200  # wrong media type
    assert post(w, gz(REPORT), ctype=None, extra=("-H", "Content-Type:"))[1] == 200
    assert post(w, b"not a report", ctype="application/tlsrpt+json")[1] == 200
    assert post(w, gz(REPORT), path="/elsewhere")[1] == 404
    assert post(w, b"x" * (1024 * 1024 + 1))[1] == 413
    obs = w.stop()
    recs = obs["tlsrpt_reports"]
    assert len(recs) == 5, recs
    r0 = recs[0]
    assert r0["valid"] is False and names(r0) == {"report"}
    paths = {f["where"] for f in r0["findings"] if f["severity"] == "error"}
    assert {"$.policies[0].policy.policy-type",
            "$.policies[0].failure-details[0].result-type",
            "$.policies[0].summary.total-successful-session-count",
            "$.date-range.start-datetime"} <= paths, r0["findings"]
    assert recs[1]["gzip"] is False and names(recs[1]) == {"not-gzip"}
    assert recs[1]["report"] == REPORT  # still read: the JSON itself is fine
    assert names(recs[2]) == {"content-type"}
    assert recs[3]["content_type"] is None and "content-type" in names(recs[3])
    assert names(recs[4]) >= {"decode"} and recs[4]["report"] is None


@pytest.mark.parametrize("fault,status", [("status-500", 500), ("status-503", 503)])
def test_collector_status_faults(world_factory, tmp_path, fault, status):
    w = start(world_factory, tmp_path, fault)
    assert post(w, gz(REPORT)) == (0, status)
    [rec] = w.stop()["tlsrpt_reports"]
    assert rec["status"] == status and rec["accepted"] is False and rec["fault"] == fault
    assert rec["valid"] is True


def test_collector_slow(world_factory, tmp_path):
    """`slow` answers after 30 s: a client with a shorter timeout gives up, and the report
    is recorded as not accepted; the world stops cleanly with the answer pending."""
    w = start(world_factory, tmp_path, "slow")
    rc, code = post(w, gz(REPORT), extra=("--max-time", "2"))
    assert rc == 28 and code == 0  # curl: operation timed out
    [rec] = w.stop()["tlsrpt_reports"]
    assert rec["fault"] == "slow" and rec["accepted"] is False and rec["valid"] is True


def test_collector_refused(world_factory, tmp_path):
    w = start(world_factory, tmp_path, "refused")
    rc, code = post(w, gz(REPORT))
    assert rc != 0 and code == 0  # curl: the connection closed before any TLS
    assert w.stop()["tlsrpt_reports"] == []


# ---- the mailbox ------------------------------------------------------------------------

def message(report=REPORT, domain="example.test", submitter="reporter.test",
            report_type="tlsrpt", part_type="application/tlsrpt+gzip", subject=None,
            to="tlsrpt@example.test"):
    """An RFC 8460 5.3 report message, CRLF lines."""
    rid = report["report-id"]
    body = base64.encodebytes(gz(report)).decode().replace("\n", "\r\n")
    subject = subject or f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{rid}>"
    return (
        f"From: tlsrpt@{submitter}\r\nTo: {to}\r\n"
        "Date: Sat, 02 Apr 2016 01:00:00 +0000\r\n"
        f"Message-ID: <{rid}@{submitter}>\r\nSubject: {subject}\r\n"
        f"TLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: {submitter}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type="{report_type}"; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nA TLS report.\r\n"
        f"--b1\r\nContent-Type: {part_type}\r\nContent-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="reporter.test!example.test!1459468800!'
        '1459555199.json.gz"\r\n\r\n'
        f"{body}--b1--\r\n").encode()


def sign(msg, key_pem, selector=b"s1", domain=b"reporter.test"):
    if dkim is None:
        pytest.fail("python3-dkim is not installed (scripts/setup-tests.sh installs it)")
    sig = dkim.sign(msg, selector, domain, key_pem, canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                                     b"mime-version", b"content-type", b"tls-report-domain",
                                     b"tls-report-submitter"])
    return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + msg


def swaks(world, msg, to="tlsrpt@example.test"):
    r = subprocess.run([need("swaks"), "--server", world.ready["hosts"]["mail.example.test"],
                        "--port", str(world.ready["smtp_port"]), "--from",
                        "postmaster@reporter.test", "--to", to, "--helo", "reporter.test",
                        "--data", "-", "--timeout", "20"],
                       input=msg, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout.decode(errors="replace")[-2000:]


def world_key(world):
    return open(world.ready["tlsrpt"]["dkim_key"], "rb").read()


def test_mailbox_signed_report(world_factory, tmp_path):
    w = start(world_factory, tmp_path)
    signed = sign(message(), world_key(w))
    swaks(w, signed)
    [rec] = w.stop()["tlsrpt_reports"]
    assert rec["via"] == "mailto" and rec["rcpt"] == "tlsrpt@example.test"
    assert rec["host"] == "mail.example.test"
    assert rec["dkim"] == {"result": "pass", "domain": "reporter.test", "selector": "s1",
                           "reason": None}
    assert rec["valid"] is True, rec["findings"]
    assert rec["report"] == REPORT and rec["gzip"] is True
    h = rec["headers"]
    assert h["content_type"] == "multipart/report" and h["report_type"] == "tlsrpt"
    assert h["tls_report_domain"] == "example.test"
    assert h["tls_report_submitter"] == "reporter.test"
    assert h["report_part_type"] == "application/tlsrpt+gzip"


def test_mailbox_dkim_tampered_and_wrong_key(world_factory, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    w = start(world_factory, tmp_path)
    good = sign(message(), world_key(w))
    # The body changed after signing: one character of the text part.
    tampered = good.replace(b"A TLS report.", b"A TLS r3port.")
    assert tampered != good
    swaks(w, tampered)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    swaks(w, sign(message(), other))
    swaks(w, message())  # unsigned
    recs = w.stop()["tlsrpt_reports"]
    assert [r["dkim"]["result"] for r in recs] == ["fail", "fail", "none"]
    assert "body hash" in recs[0]["dkim"]["reason"]
    for r in recs:
        assert names(r) == {"dkim"} and r["valid"] is False, r["findings"]
        assert r["report"] == REPORT  # the report itself was read


def test_mailbox_mime_findings(world_factory, tmp_path):
    w = start(world_factory, tmp_path)
    key = world_key(w)
    swaks(w, sign(message(report_type="tlsrpt-x"), key))
    swaks(w, sign(message(part_type="application/octet-stream"), key))
    swaks(w, sign(message(subject="TLS report"), key))
    swaks(w, sign(message(domain="other.test"), key))
    swaks(w, sign(message(), key), to="postmaster@example.test")  # not the mailbox
    recs = w.stop()["tlsrpt_reports"]
    assert len(recs) == 4
    assert names(recs[0]) == {"report-type"}
    # application/octet-stream with a .json.gz file name is still found, but named.
    assert names(recs[1]) == {"report-part"}
    assert names(recs[2]) == {"subject"}
    assert names(recs[3]) == {"tls-report-domain"}
    assert all(r["dkim"]["result"] == "pass" for r in recs)


def test_tlsrpt_section_errors(ststest_bin, tmp_path):
    """Bad tlsrpt sections are refused with file:line:column (exit 65)."""
    base = textwrap.dedent("""
        name: bad
        about: x
        refs: [RFC 8460 3]
        domain: example.test
        tlsrpt:
        %s
        expect:
          enforce: {outcome: delivered}
        """)
    cases = [
        ("  https: {host: r.example.test, fault: broken}", "'fault' must be one of none, status-500"),
        ("  mailto: {address: tlsrpt@elsewhere.test}", "must lie in the world's domain"),
        ("  https: {host: mta-sts.example.test}", "is the policy host"),
        ("  submitter: reporter.test", "tlsrpt needs 'https', 'mailto' or a verbatim 'record'"),
        ("  https: {path: /x}", "tlsrpt https needs 'host'"),
        ("  colour: blue", "unknown key 'colour' in tlsrpt"),
    ]
    for body, msg in cases:
        p = scenario_file(tmp_path, "bad", base % body)
        r = subprocess.run([ststest_bin, "world", str(p)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 65, (body, r.stderr)
        assert msg in r.stderr and f"{p}:" in r.stderr, (body, r.stderr)
