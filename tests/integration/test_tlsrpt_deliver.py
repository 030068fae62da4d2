"""TLS report delivery (RFC 8460 5) end to end: a day of real `ststest send` sessions
against `ststest world` is recorded in a report store, then `ststest report --deliver`
looks up the world's `_smtp._tls` record and sends the report to every rua:

- https: to an HTTPS collector this module runs (Python's http.server over ssl, with a
  certificate of an openssl-made CA), which records method, path, Content-Type and
  body; the body is gunzipped and checked against the independent RFC 8460 4.4 JSON
  Schema of test_tlsrpt_report.py;
- mailto: into the mailbox of a real private Postfix (postfix_fixture), the message
  parsed with Python's `email` package (headers, the 5.3 subject, multipart/report, the
  attachment) and its DKIM signature verified with Debian's python3-dkim (dkimpy), the
  public key coming from this module, not from ststest.

And what must not happen: a second run sends nothing twice; a failing collector (500,
refused) defers with exit 75 and the rerun sends only that one; no record, an invalid
record or two records send nothing and say why; a mailto rua without --dkim-key is
deferred, never sent unsigned; a report MX whose certificate does not verify still
gets the report."""
import base64
import datetime
import email
import email.policy
import fcntl
import gzip
import http.server
import json
import shutil
import sqlite3
import ssl
import subprocess
import threading

import pytest

from conftest import run_sender, scenario_file
from postfix_fixture import OpensslCA, PostfixInstance, free_port, require_postfix
from test_tlsrpt_report import schema_errors

dkim = pytest.importorskip(
    "dkim", reason="python3-dkim is not installed (scripts/setup-tests.sh installs it)")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")

SUBMITTER = "reporter.test"
SELECTOR = "s1"
CONTACT = "tlsrpt-contact@reporter.test"
RPT_DOMAIN = "rpt.example.test"  # the mailto rua's domain: its MX is the private Postfix
MAILBOX = f"user@{RPT_DOMAIN}"

TODAY = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)
DAY = TODAY.strftime("%Y-%m-%d")
START = int(TODAY.timestamp())


def at(day_offset, hours):
    t = TODAY + datetime.timedelta(days=day_offset, hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the HTTPS collector ------------------------------------------------------------------

class Collector:
    """An HTTPS server on 127.0.0.1 recording every request; `status` is what it answers."""

    def __init__(self, cert, key, port=0):
        self.requests = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.requests.append({"method": "POST", "path": self.path,
                                       "content_type": self.headers.get("Content-Type"),
                                       "body": body, "status": outer.status})
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ok(self):
        return [r for r in self.requests if 200 <= r["status"] < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The collector, the Postfix report MX (a listener with a certificate of the wrong
    name too), the CA that signed both, and the DKIM key pair."""
    require_postfix()
    tmp = tmp_path_factory.mktemp("deliver")
    ca = OpensslCA(tmp / "ca")
    collector_cert = ca.issue("collector", ["collector.example.test"])
    wrong_collector = ca.issue("wrong-collector", ["other.example.net"])
    mx_cert = ca.issue("mx", [f"mail.{RPT_DOMAIN}"])
    wrong_cert = ca.issue("wrong", ["other.example.net"])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp / "dkim.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    pub = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    pf = PostfixInstance(*mx_cert, label="postfix-tlsrpt", domain=RPT_DOMAIN,
                         listeners={"wrongname": {"smtpd_tls_cert_file": wrong_cert[0],
                                                  "smtpd_tls_key_file": wrong_cert[1]},
                                    # STARTTLS offered, but only TLS 1.0, which the
                                    # sender never speaks: every handshake fails
                                    "tls10": {"smtpd_tls_protocols": "TLSv1",
                                              "smtpd_tls_mandatory_protocols": "TLSv1"}})
    pf.start()
    coll = Collector(*collector_cert)
    try:
        yield {"ca": ca.cert, "collector_cert": collector_cert,
               "wrong_collector": wrong_collector, "dkim_key": key_file, "dkim_txt": f"v=DKIM1; k=rsa; p={pub}",
               "postfix": pf, "collector": coll, "tmp": tmp}
    finally:
        coll.close()
        left = pf.stop()
        pf.cleanup()
        assert not left, f"Postfix processes left: {left}"


def world_text(record_lines):
    """valid-enforce at example.test, plus the zone lines of the TLSRPT record(s), the
    collector's host and the mailto domain's MX (the private Postfix on 127.0.0.1)."""
    return f"""\
name: tlsrpt-deliver
about: A valid MTA-STS domain that publishes a TLSRPT record.
refs: [RFC 8460 3]
domain: example.test
dns: |
  @          MX   10 mail
  _mta-sts   TXT  "v=STSv1; id=20240101T000000;"
  collector  A    127.0.0.1
  rpt        MX   10 mail.rpt
  mail.rpt   A    127.0.0.1
{chr(10).join('  ' + line for line in record_lines)}
policy:
  mode: enforce
  mx: [mail.example.test]
  max_age: 86400
mx:
  mail.example.test:
    starttls: true
    cert: {{names: [mail.example.test]}}
expect:
  enforce: {{outcome: delivered}}
"""


def rua_https(env, path="/tlsrpt", port=None):
    return f"https://collector.example.test:{port or env['collector'].port}{path}"


def record(*ruas):
    return f'_smtp._tls TXT "v=TLSRPTv1; rua={",".join(ruas)}"'


class Case:
    """One world, one report store, a day of sessions in it; deliver() runs
    `report --deliver` for that day."""

    def __init__(self, ststest_bin, world_factory, env, tmp_path, lines):
        self.bin, self.env, self.tmp = ststest_bin, env, tmp_path
        self.world = world_factory(scenario_file(tmp_path, "world", world_text(lines)))
        self.store = tmp_path / "store.sqlite"
        self.out = tmp_path / "out"
        self.out.mkdir()
        for h in (1, 2):
            r = run_sender(ststest_bin, "send", self.world, "--report-store", str(self.store),
                           "--now", at(0, h), "postmaster@example.test")
            assert r.returncode == 0, r.stderr

    def deliver(self, *extra, key=True, smtp_port=None):
        args = [self.bin, "report", "--deliver", "--now", at(1, 1), "--report-store",
                str(self.store), "--out", str(self.out), "--submitter", SUBMITTER, "--contact",
                CONTACT, "--dns", self.world.dns, "--ca-file", str(self.env["ca"]),
                "--smtp-port", str(smtp_port or self.env["postfix"].port), "--timeout", "10"]
        if key:
            args += ["--dkim-key", str(self.env["dkim_key"]), "--dkim-selector", SELECTOR]
        return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=120)


@pytest.fixture
def case(ststest_bin, world_factory, env, tmp_path):
    return lambda *lines: Case(ststest_bin, world_factory, env, tmp_path, lines)


def report_ok(doc):
    assert schema_errors(doc) == [], json.dumps(doc, indent=2)
    assert doc["report-id"] == f"{TODAY:%Y%m%d}.example.test@{SUBMITTER}"
    assert doc["contact-info"] == CONTACT
    [p] = doc["policies"]
    assert p["policy"]["policy-domain"] == "example.test"
    assert p["summary"] == {"total-successful-session-count": 2,
                            "total-failure-session-count": 0}


def dkim_dns(env):
    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        if name.rstrip(".") == f"{SELECTOR}._domainkey.{SUBMITTER}":
            return env["dkim_txt"].encode()
        return None
    return lookup


def new_messages(env, before):
    pf = env["postfix"]
    return pf.wait_messages(before + 1, timeout=15)[before:]


FILE_NAME = f"{SUBMITTER}!example.test!{START}!{START + 86399}.json.gz"


def test_https_and_mailto_delivered_once(case, env):
    coll, pf = env["collector"], env["postfix"]
    c = case(record(rua_https(env), f"mailto:{MAILBOX}"))
    n_posts, n_mail = len(coll.requests), len(pf.messages())
    r = c.deliver("--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sorted((d["rua"], d["status"]) for d in doc["deliveries"]) == \
        sorted([(rua_https(env), "delivered"), (f"mailto:{MAILBOX}", "delivered")])
    # the written file is what went out
    written = (c.out / FILE_NAME).read_bytes()

    # https: one POST, application/tlsrpt+gzip, the gzip file as the body
    [post] = coll.requests[n_posts:]
    assert post["method"] == "POST" and post["path"] == "/tlsrpt"
    assert post["content_type"] == "application/tlsrpt+gzip"
    assert post["body"] == written
    report_ok(json.loads(gzip.decompress(post["body"])))

    # mailto: one message in the real Postfix mailbox
    [raw] = new_messages(env, n_mail)
    msg = email.message_from_string(raw, policy=email.policy.default)
    assert msg["From"] == CONTACT
    assert msg["To"] == MAILBOX
    assert msg["Subject"] == (f"Report Domain: example.test Submitter: {SUBMITTER} "
                              f"Report-ID: <{TODAY:%Y%m%d}.example.test@{SUBMITTER}>")
    assert msg["TLS-Report-Domain"] == "example.test"
    assert msg["TLS-Report-Submitter"] == SUBMITTER
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"] and msg["Message-ID"].endswith(f"@{SUBMITTER}>")
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/tlsrpt+gzip"]
    att = parts[1]
    assert att.get_content_disposition() == "attachment"
    assert att.get_filename() == FILE_NAME
    assert att["Content-Transfer-Encoding"] == "base64"
    assert att.get_content() == written
    report_ok(json.loads(gzip.decompress(att.get_content())))

    # DKIM (RFC 6376), verified by dkimpy with the key of this test
    raw_bytes = raw.encode()
    sig = email.message_from_bytes(raw_bytes)["DKIM-Signature"]
    tags = {k.strip(): v.strip() for k, v in
            (t.split("=", 1) for t in "".join(sig.split()).split(";") if "=" in t)}
    assert tags["d"] == SUBMITTER and tags["s"] == SELECTOR
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    signed = set(tags["h"].lower().split(":"))
    assert {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
            "tls-report-domain", "tls-report-submitter"} <= signed, tags["h"]
    assert dkim.verify(raw_bytes, dnsfunc=dkim_dns(env))
    # a changed report fails the check: the verdict above means something
    tampered = raw_bytes.replace(b"TLS-Report-Domain: example.test",
                                 b"TLS-Report-Domain: example.tesu")
    assert tampered != raw_bytes and not dkim.verify(tampered, dnsfunc=dkim_dns(env))

    # the report MX's certificate chains to --ca-file and names it: verified TLS
    assert "TLS verified" in r.stderr, r.stderr

    # our own readers take the message as it landed in the mailbox
    eml = c.tmp / "received.eml"
    eml.write_text(raw)
    lint = subprocess.run([c.bin, "lint", "--report", str(eml)], capture_output=True, text=True,
                          timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    summ = subprocess.run([c.bin, "report", "--summary", "--json", str(eml)],
                          capture_output=True, text=True, timeout=30)
    assert summ.returncode == 0, summ.stderr
    [dom] = json.loads(summ.stdout)["domains"]
    assert dom["policy_domain"] == "example.test" and dom["successful_sessions"] == 2

    # a rerun sends nothing twice
    again = c.deliver("-v")
    assert again.returncode == 0, again.stderr
    assert "already delivered" in again.stderr
    assert len(coll.requests) == n_posts + 1
    assert len(pf.messages()) == n_mail + 1


def test_report_mx_with_a_broken_certificate_still_gets_the_report(case, env):
    """RFC 8460 5.3: "MUST deliver reports despite any TLS-related failures": the MX's
    certificate names other.example.net, not mail.rpt.example.test."""
    pf = env["postfix"]
    c = case(record(f"mailto:{MAILBOX}"))
    n_mail = len(pf.messages())
    r = c.deliver(smtp_port=pf.ports["wrongname"])
    assert r.returncode == 0, r.stderr
    assert "TLS unverified, accepted" in r.stderr, r.stderr
    [raw] = new_messages(env, n_mail)
    assert "TLS-Report-Domain: example.test" in raw
    assert dkim.verify(raw.encode(), dnsfunc=dkim_dns(env))


def test_report_mx_whose_handshake_fails_gets_the_report_in_the_clear(case, env):
    """RFC 8460 5.3 again: the handshake fails, so the report goes in a plaintext
    session to the same MX."""
    pf = env["postfix"]
    c = case(record(f"mailto:{MAILBOX}"))
    n_mail = len(pf.messages())
    r = c.deliver("-v", smtp_port=pf.ports["tls10"])
    assert r.returncode == 0, r.stderr
    assert "TLS handshake failed" in r.stderr and "again without STARTTLS" in r.stderr, r.stderr
    assert "plaintext after a failed TLS handshake" in r.stderr, r.stderr
    [raw] = new_messages(env, n_mail)
    assert dkim.verify(raw.encode(), dnsfunc=dkim_dns(env))


@pytest.mark.parametrize("fault", ["status-500", "refused", "bad-certificate"])
def test_failing_https_is_deferred_and_the_rerun_sends_only_it(case, env, fault):
    """A failing https rua defers (exit 75) and is named with its reason; the mailto rua
    is delivered all the same; once the collector works, the rerun POSTs that report
    once and does not mail it again."""
    coll, pf = env["collector"], env["postfix"]
    port = free_port()
    url = rua_https(env, path="/fail", port=port)
    c = case(record(url, f"mailto:{MAILBOX}"))
    n_mail = len(pf.messages())
    broken = None
    if fault == "status-500":
        broken = Collector(*env["collector_cert"], port=port)
        broken.status = 500
    elif fault == "bad-certificate":
        broken = Collector(*env["wrong_collector"], port=port)
    try:
        r = c.deliver()
    finally:
        if broken:
            broken.close()
    assert r.returncode == 75, r.stderr
    assert f"to {url} deferred" in r.stderr, r.stderr
    reason = {"status-500": "HTTP status 500", "refused": "onnect",
              "bad-certificate": "--rua-insecure accepts any certificate"}[fault]
    assert reason in r.stderr, r.stderr
    if broken:
        assert len(broken.requests) == (1 if fault == "status-500" else 0)
    assert len(new_messages(env, n_mail)) == 1  # the mailto rua got it all the same

    fixed = Collector(*env["collector_cert"], port=port)
    try:
        r = c.deliver("-v")
    finally:
        fixed.close()
    assert r.returncode == 0, r.stderr
    assert len(fixed.requests) == 1 and fixed.requests[0]["path"] == "/fail"
    report_ok(json.loads(gzip.decompress(fixed.requests[0]["body"])))
    assert f"mailto:{MAILBOX}: already delivered" in r.stderr
    assert len(pf.messages()) == n_mail + 1  # not mailed twice


def test_rua_insecure_accepts_a_bad_collector_certificate(case, env):
    port = free_port()
    url = rua_https(env, port=port)
    c = case(record(url))
    broken = Collector(*env["wrong_collector"], port=port)
    try:
        r = c.deliver("--rua-insecure")
    finally:
        broken.close()
    assert r.returncode == 0, r.stderr
    assert len(broken.requests) == 1


@pytest.mark.parametrize("lines,why", [
    ([], "_smtp._tls.example.test TXT: no such name (NXDOMAIN)"),
    (['_smtp._tls TXT "v=TLSRPTv1; rua=ftp://collector.example.test/"'], "invalid"),
    ([record("mailto:a@rpt.example.test"), record("mailto:b@rpt.example.test")],
     "2 TXT records begin with v=TLSRPTv1"),
])
def test_no_valid_record_sends_nothing_and_says_why(case, env, lines, why):
    coll, pf = env["collector"], env["postfix"]
    c = case(*lines)
    n_posts, n_mail = len(coll.requests), len(pf.messages())
    r = c.deliver()
    assert r.returncode == 0, r.stderr
    assert "example.test: no report sent: " in r.stderr and why in r.stderr, r.stderr
    assert (c.out / FILE_NAME).exists()  # the report is written all the same
    assert len(coll.requests) == n_posts and len(pf.messages()) == n_mail


@pytest.mark.parametrize("rua,reason", [
    # Postfix knows only user@: 550 for anyone else, named with the MX and its reply
    (f"mailto:nobody@{RPT_DOMAIN}", "RCPT rejected: 550 <nobody@rpt.example.test>"),
    # no such domain: no MX, no address
    ("mailto:tlsrpt@nomx.example.test", "nomx.example.test MX: no such name (NXDOMAIN)"),
])
def test_a_failing_mailto_is_deferred_with_its_reason(case, env, rua, reason):
    pf = env["postfix"]
    c = case(record(rua))
    n_mail = len(pf.messages())
    r = c.deliver()
    assert r.returncode == 75, r.stderr
    assert f"to {rua} deferred" in r.stderr and reason in r.stderr, r.stderr
    assert len(pf.messages()) == n_mail
    # nothing was recorded as delivered: the rerun tries again
    r = c.deliver()
    assert r.returncode == 75 and f"to {rua} deferred" in r.stderr, r.stderr


def test_one_delivery_run_per_store_at_a_time(case, env):
    """Two `report --deliver` at once could both send a report (the ledger is read
    before a send, written after it): a second run while the first holds the store's
    lock sends nothing and defers."""
    coll = env["collector"]
    c = case(record(rua_https(env)))
    n_posts = len(coll.requests)
    with open(f"{c.store}.deliver-lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = c.deliver()
        assert r.returncode == 75, r.stderr
        assert "another `ststest report --deliver` is delivering from this store" in r.stderr
        assert len(coll.requests) == n_posts
    r = c.deliver()
    assert r.returncode == 0, r.stderr
    assert len(coll.requests) == n_posts + 1


def test_mailto_without_a_dkim_key_is_deferred_not_sent_unsigned(case, env):
    coll, pf = env["collector"], env["postfix"]
    c = case(record(rua_https(env), f"mailto:{MAILBOX}"))
    n_posts, n_mail = len(coll.ok()), len(pf.messages())
    r = c.deliver(key=False)
    assert r.returncode == 75, r.stderr
    assert "--dkim-key" in r.stderr and f"mailto:{MAILBOX} deferred" in r.stderr, r.stderr
    assert len(coll.ok()) == n_posts + 1  # the https rua is not held back
    assert len(pf.messages()) == n_mail


def test_bad_key_and_selector_are_named(case, env, tmp_path):
    c = case(record(f"mailto:{MAILBOX}"))
    missing = tmp_path / "no-such.pem"
    r = c.deliver("--dkim-key", str(missing))
    assert r.returncode == 65 and str(missing) in r.stderr, r.stderr
    notkey = tmp_path / "notkey.pem"
    notkey.write_text("hello\n")
    r = c.deliver("--dkim-key", str(notkey))
    assert r.returncode == 65 and "not a PEM private key" in r.stderr, r.stderr
    r = c.deliver("--dkim-selector", "bad_selector!")
    assert r.returncode == 64 and "--dkim-selector 'bad_selector!'" in r.stderr, r.stderr


def test_a_dns_failure_defers(case, env):
    c = case(record(f"mailto:{MAILBOX}"))
    dead = free_port()
    args = [c.bin, "report", "--deliver", "--now", at(1, 1), "--report-store", str(c.store),
            "--out", str(c.out), "--submitter", SUBMITTER, "--dns", f"127.0.0.1:{dead}",
            "--timeout", "2", "--dkim-key", str(env["dkim_key"])]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 75, r.stderr
    assert "_smtp._tls.example.test TXT" in r.stderr and "deferred" in r.stderr, r.stderr


def test_pruning_and_a_version_1_store(case, env, ststest_bin, tmp_path):
    """A version 1 store (sessions only) is migrated (the ledger added, sessions kept);
    `report` prunes sessions older than --keep-days."""
    c = case()
    db = sqlite3.connect(c.store)
    # Make it a version 1 store: no ledger.
    db.execute("DROP TABLE delivery")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    # an old session: 40 days before the reported day
    old = START - 40 * 86400
    db.execute("INSERT INTO session (at, policy_domain, policy_type, policy_string, mx_host) "
               "VALUES (?, 'old.test', 'no-policy-found', '', '')", (old,))
    db.commit()
    db.close()
    r = c.deliver("--keep-days", "31")
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(c.store)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM session WHERE at < ?", (START,)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM session").fetchone()[0] == 2
    db.close()
