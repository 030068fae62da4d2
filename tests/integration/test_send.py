"""`ststest send` and `ststest check` against the fake world (`ststest world`).

Each test starts a world from a scenario file, runs the sender at it, and checks three
things: the exit status, the JSON result (DESIGN.md "send --json"), and what the world
observed (DNS queries, policy fetches, SMTP commands with their TLS flag, messages) —
in particular the security invariant: under enforce or --require-tls no MAIL, RCPT,
DATA or message byte without a verified TLS session.
"""
import json
import socket
import subprocess
import threading
import time

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from conftest import RCPT, UdpServer, run_sender, scenario_file, scenario_path, send_json

ENVELOPE = {"MAIL", "RCPT", "DATA"}


def envelope_in_clear(observed):
    """Commands of the envelope sent without TLS, and messages received in the clear."""
    bad = []
    for s in observed["smtp_sessions"]:
        for c in s["commands"]:
            if c["verb"] in ENVELOPE and not c["tls"]:
                bad.append((s["host"], c["verb"]))
        for m in s.get("messages", []):
            if not m["tls"]:
                bad.append((s["host"], "message"))
    return bad


def verbs(observed):
    return [c["verb"] for s in observed["smtp_sessions"] for c in s["commands"]]


def messages(observed):
    return [m for s in observed["smtp_sessions"] for m in s.get("messages", [])]


def test_send_valid_enforce(ststest_bin, world_factory):
    w = world_factory(scenario_path("valid-enforce"))
    r, doc = send_json(ststest_bin, w)
    obs = w.stop()
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    assert res["recipient"] == RCPT
    assert res["domain"] == "example.test"
    assert res["outcome"] == "delivered"
    assert res["failures"] == []
    pol = res["policy"]
    assert pol["source"] == "fetched"
    assert pol["mode"] == "enforce"
    assert pol["id"] == "20240101T000000"
    assert pol["max_age"] == 86400
    assert pol["mx"] == ["mail.example.test"]
    [mx] = res["mx"]
    assert mx["host"] == "mail.example.test"
    assert mx["preference"] == 10
    assert mx["address"] == w.ready["hosts"]["mail.example.test"]
    assert mx["policy_match"] is True
    assert mx["starttls"] is True
    assert mx["action"] == "delivered"
    assert mx["failure"] is None
    tls = mx["tls"]
    assert tls["verified"] is True
    assert tls["version"].startswith("TLSv1.")
    assert tls["cipher"]
    assert "DNS:mail.example.test" in tls["peer_names"]
    assert tls["not_before"].endswith("Z") and tls["not_after"].endswith("Z")
    assert mx["smtp"]["code"] == 250

    # What the world saw: TXT first, one HTTPS fetch, one session over TLS with SNI.
    assert obs["dns"][0]["name"] == "_mta-sts.example.test"
    assert obs["dns"][0]["type"] == "TXT"
    [fetch] = obs["policy_fetches"]
    assert fetch["scheme"] == "https" and fetch["status"] == 200
    assert fetch["sni"] == "mta-sts.example.test"
    [sess] = obs["smtp_sessions"]
    assert sess["sni"] == "mail.example.test"
    assert verbs(obs)[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert envelope_in_clear(obs) == []
    [msg] = messages(obs)
    assert msg["tls"] is True and msg["bytes"] > 0

    # The transcript a postmaster reads.
    err = r.stderr
    for line in ('DNS _mta-sts.example.test TXT -> "v=STSv1; id=20240101T000000;"',
                 "MTASTS policy-->mode enforce", "MTASTS policy-->mx mail.example.test",
                 "MX 10 mail.example.test policy match", "--> EHLO", "--> STARTTLS",
                 "~~> MAIL FROM:<", "<~~ 250", "Cert VALIDATED: ok",
                 "Cert Hostname VERIFIED: certificate names DNS:mail.example.test",
                 ", MX is mail.example.test",
                 "Not Valid Before", "Not Valid After",
                 "RESULT postmaster@example.test: delivered"):
        assert line in err, f"{line!r} not in transcript:\n{err}"
    assert "--> MAIL" not in err


def test_send_text_output(ststest_bin, world_factory):
    w = world_factory(scenario_path("valid-enforce"))
    r = run_sender(ststest_bin, "send", w, RCPT)
    w.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{RCPT}: delivered")
    assert "[" in r.stderr and "] SEND postmaster@example.test" in r.stderr


def test_check_sends_no_mail(send_once):
    # valid-enforce publishes no _smtp._tls record: the one finding, a warning (exit 1).
    r, doc, obs = send_once(scenario_path("valid-enforce"), command="check", target="example.test")
    assert r.returncode == 1, r.stderr
    [res] = doc["results"]
    assert res["domain"] == "example.test"
    assert "outcome" not in res and res["would"] == "deliver"
    assert res["verdict"] == "warn"
    assert [f["id"] for f in res["findings"]] == ["tlsrpt-missing"]
    assert res["mx"][0]["tls"]["verified"] is True
    assert res["policy"]["source"] == "fetched"
    assert messages(obs) == []
    assert verbs(obs) == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


def test_mode_none_override(send_once):
    r, doc, obs = send_once(scenario_path("valid-enforce"), "--mode", "none")
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "delivered"
    assert res["policy"]["source"] == "fetched"
    assert res["policy"]["mode"] == "none"
    assert res["policy"]["policy_mode"] == "enforce"
    assert res["tls_required"] is False
    # Opportunistic TLS is still used when offered.
    assert res["mx"][0]["tls"]["verified"] is True
    assert len(messages(obs)) == 1


def test_two_recipients_concurrently(ststest_bin, world_factory):
    w = world_factory(scenario_path("valid-enforce"))
    r = run_sender(ststest_bin, "send", w, "--json", RCPT, "other@example.test")
    obs = w.stop()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [x["recipient"] for x in doc["results"]] == [RCPT, "other@example.test"]
    assert all(x["outcome"] == "delivered" for x in doc["results"])
    assert len(messages(obs)) == 2
    assert envelope_in_clear(obs) == []


def test_one_discovery_per_domain(ststest_bin, world_factory):
    """Single flight (issue 15): 20 recipients of one domain, 8 at a time, no cache:
    one _mta-sts TXT query and one policy fetch for all, and every result still
    reports the policy."""
    w = world_factory(scenario_path("valid-enforce"))
    rcpts = [f"u{i}@example.test" for i in range(20)]
    r = run_sender(ststest_bin, "send", w, "--json", "--concurrency", "8", *rcpts)
    obs = w.stop()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [x["recipient"] for x in doc["results"]] == rcpts
    for x in doc["results"]:
        assert x["outcome"] == "delivered"
        assert x["policy"]["source"] == "fetched" and x["policy"]["mode"] == "enforce", x
    txt = [q for q in obs["dns"] if q["name"].startswith("_mta-sts.") and q["type"] == "TXT"]
    assert len(txt) == 1, obs["dns"]
    assert len(obs["policy_fetches"]) == 1, obs["policy_fetches"]
    assert len(messages(obs)) == 20
    assert obs["dns_drops"] == 0


RESUMED = "(resumed: a session verified earlier in this run)"


@pytest.mark.parametrize("flags,resumed", [((), 2), (("--no-tls-resume",), 0)])
def test_tls_sessions_resumed_within_a_run(ststest_bin, world_factory, flags, resumed):
    """Three recipients one after another: the first session makes a full handshake and
    is verified; by default the next two resume it (TLS 1.3 tickets; no certificate is
    sent) and are reported verified, as every MTA with a TLS session cache does;
    --no-tls-resume makes a full handshake every time."""
    w = world_factory(scenario_path("valid-enforce"))
    rcpts = ["u1@example.test", "u2@example.test", "u3@example.test"]
    r = run_sender(ststest_bin, "send", w, "--json", "-v", "--concurrency", "1", *flags, *rcpts)
    obs = w.stop()
    assert r.returncode == 0, r.stderr
    tls_lines = [l for l in r.stderr.splitlines() if ": TLS TLSv1.3 " in l]
    assert len(tls_lines) == 3, r.stderr
    assert RESUMED not in tls_lines[0]
    assert sum(RESUMED in l for l in tls_lines) == resumed, tls_lines
    for x in json.loads(r.stdout)["results"]:
        assert x["outcome"] == "delivered", x
        [mx] = x["mx"]
        assert mx["tls"]["verified"] is True and mx["tls"]["peer_names"], mx
    assert len(messages(obs)) == 3 and envelope_in_clear(obs) == []


def test_tls_session_of_a_mismatch_is_never_resumed(ststest_bin, world_factory):
    """testing mode with a certificate for another name: every session is judged afresh
    (an unverified session is never kept), so each one reports the mismatch."""
    w = world_factory(scenario_path("bad-san"), "--mode", "testing")
    rcpts = ["u1@example.test", "u2@example.test", "u3@example.test"]
    r = run_sender(ststest_bin, "send", w, "--json", "-v", "--concurrency", "1", *rcpts)
    w.stop()
    assert r.returncode == 0, r.stderr
    assert RESUMED not in r.stderr
    for x in json.loads(r.stdout)["results"]:
        assert x["outcome"] == "delivered" and x["failures"] == ["certificate-host-mismatch"], x


def test_data_file_and_stdin(ststest_bin, world_factory, tmp_path):
    body = "Subject: hi\n\n.a line with a leading dot\nend\n"
    f = tmp_path / "msg.txt"
    f.write_text(body)
    w = world_factory(scenario_path("valid-enforce"))
    r1, d1 = send_json(ststest_bin, w, "--data", str(f), "--from", "me@sender.test")
    r2, d2 = send_json(ststest_bin, w, "--data", "-", input=body)
    obs = w.stop()
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    m1, m2 = messages(obs)
    assert m1["sha256"] == m2["sha256"]
    assert m1.get("from", "me@sender.test") == "me@sender.test"


def test_data_file_missing_is_input_error(ststest_bin, tmp_path):
    r = subprocess.run([ststest_bin, "send", "--dns", "127.0.0.1:9", "--data",
                        str(tmp_path / "nope"), RCPT], capture_output=True, text=True, timeout=30)
    assert r.returncode == 65
    assert "nope" in r.stderr


@pytest.mark.parametrize("mode,exit_code,outcome,received,failures,verified", [
    ("enforce", 75, "deferred", 0, ["certificate-host-mismatch"], False),
    ("testing", 0, "delivered", 1, ["certificate-host-mismatch"], False),
    ("none", 0, "delivered", 1, [], False),
])
def test_bad_san(send_once, mode, exit_code, outcome, received, failures, verified):
    r, doc, obs = send_once(scenario_path("bad-san"), world_options=("--mode", mode))
    assert r.returncode == exit_code, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == outcome
    assert res["failures"] == failures
    mx = res["mx"][0]
    assert mx["tls"]["verified"] is verified
    assert mx["tls"]["name_ok"] is False
    assert "DNS:wrong.example.test" in mx["tls"]["peer_names"]
    assert len(messages(obs)) == received
    if mode == "enforce":
        assert mx["action"] == "refused"
        assert mx["failure"] == "certificate-host-mismatch"
        assert not ENVELOPE & set(verbs(obs)), verbs(obs)
        assert ("Cert Hostname MISMATCH: certificate names DNS:wrong.example.test"
                " CN:wrong.example.test, MX is mail.example.test") in r.stderr


@pytest.mark.parametrize("mode,exit_code,outcome,received,failures", [
    ("enforce", 75, "deferred", 0, ["starttls-not-supported"]),
    ("testing", 0, "delivered", 1, ["starttls-not-supported"]),
    ("none", 0, "delivered", 1, []),
])
def test_no_starttls(send_once, mode, exit_code, outcome, received, failures):
    r, doc, obs = send_once(scenario_path("no-starttls"), world_options=("--mode", mode))
    assert r.returncode == exit_code, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == outcome
    assert res["failures"] == failures
    assert res["mx"][0]["starttls"] is False
    assert res["mx"][0]["tls"] is None
    assert len(messages(obs)) == received
    if mode == "enforce":
        # Security invariant: nothing after EHLO but QUIT.
        assert verbs(obs) == ["EHLO", "QUIT"]


def test_require_tls_without_policy(send_once):
    r, doc, obs = send_once(scenario_path("require-tls-no-policy"), "--require-tls")
    assert r.returncode == 75, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "deferred"
    assert res["policy"]["source"] == "none"
    assert res["failures"] == ["starttls-not-supported"]
    assert res["mx"][0]["action"] == "refused"
    assert not ENVELOPE & set(verbs(obs))
    assert messages(obs) == []


def test_mx_not_in_policy_is_never_contacted(send_once):
    r, doc, obs = send_once(scenario_path("mx-not-in-policy"))
    assert r.returncode == 75, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "deferred"
    assert res["failures"] == ["validation-failure"]
    mx = res["mx"][0]
    assert mx["policy_match"] is False
    assert mx["action"] == "refused"
    assert mx["connected"] is False
    assert obs["smtp_sessions"] == []


def test_mx_fallback_to_second_mx(send_once):
    r, doc, obs = send_once(scenario_path("mx-fallback"))
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "delivered"
    assert [m["host"] for m in res["mx"]] == ["mx1.example.test", "mx2.example.test"]
    assert [m["action"] for m in res["mx"]] == ["refused", "delivered"]
    assert res["failures"] == ["certificate-host-mismatch"]
    assert envelope_in_clear(obs) == []
    delivered = [s["host"] for s in obs["smtp_sessions"] if s.get("messages")]
    assert delivered == ["mx2.example.test"]


def test_policy_404_means_no_policy(send_once):
    r, doc, obs = send_once(scenario_path("policy-404"))
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "delivered"
    assert res["policy"]["source"] == "none"
    assert res["failures"] == ["sts-policy-fetch-error"]
    assert obs["policy_fetches"][0]["status"] == 404


def test_now_in_the_future_expires_everything(send_once):
    # --now reaches both the policy fetch (its certificate is expired then, so there
    # is no policy) and the MX certificate check.
    r, doc, obs = send_once(scenario_path("valid-enforce"), "--now", "2099-01-01T00:00:00Z")
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    assert res["policy"]["source"] == "none"
    assert "sts-webpki-invalid" in res["failures"]
    mx = res["mx"][0]
    assert mx["tls"]["verified"] is False
    assert mx["tls"]["time_ok"] is False
    assert mx["action"] == "delivered"  # no policy: opportunistic delivery
    assert len(messages(obs)) == 1


def test_now_with_require_tls_refuses(send_once):
    r, doc, obs = send_once(scenario_path("valid-enforce"), "--require-tls", "--now", "4070908800")
    assert r.returncode == 75, r.stderr
    [res] = doc["results"]
    assert res["mx"][0]["action"] == "refused"
    assert res["mx"][0]["failure"] == "certificate-expired"
    assert messages(obs) == []
    assert not ENVELOPE & set(verbs(obs))


@pytest.mark.parametrize("command,args,needle", [
    ("send", [], "no RCPT given"),
    ("check", [], "no DOMAIN given"),
    ("send", ["--mode", "strict", RCPT], "--mode 'strict'"),
    ("send", ["--smtp-port", "0", RCPT], "--smtp-port '0'"),
    ("send", ["--https-port", "70000", RCPT], "--https-port '70000'"),
    ("send", ["--timeout", "-1", RCPT], "--timeout '-1'"),
    ("send", ["--now", "yesterday", RCPT], "--now 'yesterday'"),
    ("send", ["--now", "2030-02-30T00:00:00Z", RCPT], "--now '2030-02-30T00:00:00Z'"),
    ("check", ["--now", "0", "example.test"], "--now '0'"),
    ("check", ["--now", "2030-01-01T00:00:00", "example.test"], "--now '2030-01-01T00:00:00'"),
    ("send", ["--cache", "/tmp/x.db", "--no-cache", RCPT], "exclude each other"),
    ("send", ["--cache", "", RCPT], "--cache needs a FILE"),
    ("send", ["--concurrency", "0", RCPT], "--concurrency '0'"),
    ("check", ["--concurrency", "many", "example.test"], "--concurrency 'many'"),
    ("send", ["--time-limit", "0", RCPT], "--time-limit '0'"),
    ("send", ["--dns-timeout", "0", RCPT], "--dns-timeout '0'"),
    ("check", ["--dns-timeout", "3601", "example.test"], "--dns-timeout '3601'"),
    ("send", ["--dns-timeout", "soon", RCPT], "--dns-timeout 'soon'"),
    ("send", ["--frobnicate", RCPT], "unknown option '--frobnicate'"),
    ("send", [RCPT, "--dns"], "--dns needs a value"),
    ("check", ["--data", "x", "example.test"], "--data is not used by check"),
    ("send", ["--dns", "not an address", RCPT], ""),
])
def test_usage_errors(ststest_bin, command, args, needle):
    r = subprocess.run([ststest_bin, command, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert needle in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("command", ["send", "check"])
def test_help_lists_every_option(ststest_bin, command):
    r = subprocess.run([ststest_bin, command, "--help"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0
    assert r.stdout.startswith(f"usage: ststest {command}")
    for opt in ("--dns", "--ca-file", "--smtp-port", "--https-port", "--require-tls", "--mode",
                "--no-cache", "--cache", "--json", "--helo", "--timeout", "--dns-timeout", "--now",
                "--concurrency", "--time-limit", "-v"):
        assert opt in r.stdout, opt
    if command == "send":
        assert "--from" in r.stdout and "--data" in r.stdout


# Paths of RFC 5321 5.1 / RFC 7505 with small scenarios written here (the world's
# scenario format, see scenarios/valid-enforce.yaml).
NULL_MX = """\
name: null-mx
refs: [RFC 7505 3]
about: The domain publishes a null MX.
domain: example.test
dns: |
  @          MX   0 .
expect:
  enforce: {outcome: failed, exit: 69, received: 0}
"""

IMPLICIT_MX = """\
name: implicit-mx
refs: [RFC 5321 5.1]
about: No MX records; the domain's own address is the implicit MX.
domain: example.test
mx:
  example.test: {}
expect:
  enforce: {outcome: delivered, exit: 0, received: 1}
"""


def test_null_mx_fails_at_once(send_once, tmp_path):
    r, doc, obs = send_once(scenario_file(tmp_path, "null-mx", NULL_MX))
    assert r.returncode == 69, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "failed"
    assert res["null_mx"] is True
    assert res["mx"] == []
    assert "RFC 7505" in res["detail"]
    assert obs["smtp_sessions"] == []


def test_implicit_mx(send_once, tmp_path):
    r, doc, obs = send_once(scenario_file(tmp_path, "implicit-mx", IMPLICIT_MX))
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "delivered"
    assert res["policy"]["source"] == "none"
    [mx] = res["mx"]
    assert mx["host"] == "example.test" and mx["implicit"] is True
    assert mx["policy_match"] is None
    assert mx["tls"]["verified"] is True
    assert len(messages(obs)) == 1


def test_domain_that_does_not_exist_fails(send_once):
    r, doc, _ = send_once(scenario_path("valid-enforce"), target="postmaster@nohost.example.test")
    assert r.returncode == 69, r.stderr
    [res] = doc["results"]
    assert res["outcome"] == "failed"
    assert res["domain"] == "nohost.example.test"
    assert "does not exist" in res["detail"]


# ---- the run's time limit (sts_sender_opts.deadline, --time-limit) ----
#
# A world of our own: a tiny DNS server (dnspython) that says example.test has one MX,
# mail.example.test at 127.0.0.1, and no _mta-sts record; and an SMTP "server" that
# accepts connections and never says a word (or a DNS server that never answers).


class TinyDns(UdpServer):
    """A UDP DNS server on 127.0.0.1: answers from `records` {(name, type): [rdata]}
    (an empty list = NODATA), forwards other questions to `upstream` ("host:port") when
    given, else says NXDOMAIN; `silent` never answers at all."""

    def __init__(self, records=None, upstream=None, silent=False):
        self.records = records if records is not None else {
            ("example.test.", "MX"): ["10 mail.example.test."],
            ("example.test.", "A"): [], ("example.test.", "AAAA"): [],
            ("mail.example.test.", "A"): ["127.0.0.1"], ("mail.example.test.", "AAAA"): [],
        }
        self.silent = silent
        super().__init__(upstream)

    def reply(self, data):
        if self.silent:
            return None
        q = dns.message.from_wire(data)
        qn = q.question[0]
        key = (qn.name.to_text().lower(), dns.rdatatype.to_text(qn.rdtype))
        if key not in self.records and self.upstream:
            return self.forward(data)
        resp = dns.message.make_response(q)
        if key in self.records:
            if self.records[key]:
                resp.answer.append(dns.rrset.from_text_list(qn.name, 60, dns.rdataclass.IN,
                                                            qn.rdtype, self.records[key]))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        # dnspython shuffles the records of an RRset by default: keep the given order.
        return resp.to_wire(want_shuffle=False)


class SilentSmtp:
    """Accepts connections and never sends a greeting."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except socket.timeout:
                continue

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_world():
    d, s = TinyDns(), SilentSmtp()
    yield d, s
    d.close()
    s.close()


@pytest.mark.parametrize("command,targets,status", [
    ("send", [RCPT], 75),
    ("send", [RCPT, "other@example.test", "third@example.test"], 75),
    ("check", ["example.test"], 2),  # check: the MX gave no greeting (mx-unreachable)
])
def test_time_limit_aborts_a_silent_mx(ststest_bin, silent_world, command, targets, status):
    d, s = silent_world
    start = time.monotonic()
    r = subprocess.run([ststest_bin, command, "--dns", d.addr, "--smtp-port", str(s.port),
                        "--no-cache", "--timeout", "60", "--time-limit", "1", "--concurrency",
                        "1", "--json", *targets], capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - start
    assert r.returncode == status, r.stderr
    assert elapsed < 10, elapsed
    doc = json.loads(r.stdout)
    assert len(doc["results"]) == len(targets)
    for res in doc["results"]:
        assert res.get("outcome", res.get("would")) in ("deferred", "defer")
        assert res["detail"] == "time limit"
        if command == "check":
            assert res["verdict"] == "fail"
            assert "mx-unreachable" in [f["id"] for f in res["findings"]]
    first = doc["results"][0]
    assert first["mx"][0]["connected"] is True
    assert first["mx"][0]["action"] == "tempfail"
    assert first["mx"][0]["detail"] == "time limit"
    assert first["mx"][0]["stage"] == "BANNER"
    # With --concurrency 1 the others never started.
    for res in doc["results"][1:]:
        assert res["mx"] == []
    assert "TIME LIMIT of 1 s reached" in r.stderr
    assert "BUG" not in r.stderr


def test_time_limit_aborts_dns(ststest_bin):
    d = TinyDns(silent=True)
    try:
        r = subprocess.run([ststest_bin, "send", "--dns", d.addr, "--no-cache",
                            "--time-limit", "0.5", "--json", RCPT],
                           capture_output=True, text=True, timeout=30)
    finally:
        d.close()
    assert r.returncode == 75, r.stderr
    [res] = json.loads(r.stdout)["results"]
    assert res["outcome"] == "deferred" and res["detail"] == "time limit"
    assert res["policy"]["source"] == "none"
    assert "BUG" not in r.stderr


@pytest.mark.parametrize("command,target", [("send", RCPT), ("check", "example.test")])
def test_dns_timeout_option(ststest_bin, command, target):
    # --dns-timeout bounds each query: a server that never answers is a DNS timeout
    # (temporary: deferred), after the time given instead of the default 10 s.
    d = TinyDns(silent=True)
    try:
        r = subprocess.run([ststest_bin, command, "--dns", d.addr, "--no-cache",
                            "--dns-timeout", "0.5", "-v", "--json", target],
                           capture_output=True, text=True, timeout=30)
    finally:
        d.close()
    # check: no answer for _mta-sts is no usable record (sts-record-invalid, exit 2).
    assert r.returncode == (75 if command == "send" else 2), r.stderr
    assert "dns resolver: servers %s, timeout 0.5 s" % d.addr in r.stderr
    [res] = json.loads(r.stdout)["results"]
    assert res.get("outcome", res.get("would")) in ("deferred", "defer")
    assert res["policy"]["source"] == "none"
    if command == "check":
        assert res["findings"][0]["id"] == "sts-record-invalid"
    assert "TIMEOUT" in res["detail"], res["detail"]
    assert "BUG" not in r.stderr


def test_silent_mx_without_time_limit_times_out_per_stage(ststest_bin, silent_world):
    # The per-stage --timeout still applies; a greeting that never comes is a tempfail.
    d, s = silent_world
    r = subprocess.run([ststest_bin, "send", "--dns", d.addr, "--smtp-port", str(s.port),
                        "--no-cache", "--timeout", "0.5", "--json", RCPT],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 75, r.stderr
    [res] = json.loads(r.stdout)["results"]
    assert res["mx"][0]["stage"] == "BANNER"
    assert "no reply in BANNER" in res["mx"][0]["detail"]


def test_check_prints_the_per_mx_matrix_and_send_shaped_json(ststest_bin, world_factory):
    w = world_factory(scenario_path("mx-fallback"))
    rc, check = send_json(ststest_bin, w, command="check", target="example.test")
    rs, sent = send_json(ststest_bin, w)
    w.stop()
    # mx1's certificate names another host: check fails (exit 2), a sender would deliver
    # to mx2 all the same.
    assert rc.returncode == 2, rc.stderr
    [c], [s] = check["results"], sent["results"]
    assert c["recipient"] is None and s["recipient"] == RCPT
    assert set(s) - {"outcome"} <= set(c) and "outcome" not in c
    assert c["would"] == "deliver" and c["verdict"] == "fail"
    assert [set(m) <= set(n) for m, n in zip(s["mx"], c["mx"])] == [True, True]
    assert set(c["policy"]) == set(s["policy"])
    # The matrix: one header and one row per MX, with every column.
    lines = rc.stderr.splitlines()
    [header] = [l for l in lines if "pref connect starttls" in l]
    assert header.split("] ", 1)[1].split() == [
        "MX", "pref", "connect", "starttls", "tls", "trusted", "name-ok", "policy", "result",
        "ms", "cert-expires"]
    rows = [l.split("] ", 1)[1].split() for l in lines
            if l.split("] ", 1)[-1].startswith(("mx1.example.test", "mx2.example.test"))]
    assert [r[:4] + r[5:9] for r in rows] == [
        ["mx1.example.test", "10", "yes", "yes", "yes", "no", "match", "refused"],
        ["mx2.example.test", "20", "yes", "yes", "yes", "yes", "match", "delivered"],
    ], rows
    assert rows[0][4].startswith("TLSv1.") and rows[1][4].startswith("TLSv1.")
    # The time each MX took (its address lookup and every stage to the EHLO after TLS)
    # and the day its certificate ends, as the JSON has them.
    for r, m in zip(rows, c["mx"]):
        total = sum(v or 0 for v in m["timings_ms"].values())
        assert abs(float(r[9]) - total) < 0.2, (r, m["timings_ms"])
        assert r[10] == m["tls"]["chain"][0]["not_after"][:10], (r, m["tls"]["chain"][0])
    # send keeps its matrix as it was.
    [sh] = [l for l in rs.stderr.splitlines() if "pref connect starttls" in l]
    assert sh.split("] ", 1)[1].split()[-1] == "result"


@pytest.mark.parametrize("a,aaaa,delivered", [
    (["DEAD", "LIVE"], [], True),   # the first address refuses: the second delivers
    (["DEAD"], ["::1"], False),     # A first, then AAAA; both refuse: deferred
])
def test_every_address_of_an_mx_is_tried(ststest_bin, world_factory, a, aaaa, delivered):
    w = world_factory(scenario_path("valid-enforce"))
    live = w.ready["hosts"]["mail.example.test"]
    dead = live.rsplit(".", 1)[0] + ".99"  # same world block, nobody listens there
    addrs = [live if x == "LIVE" else dead if x == "DEAD" else x for x in a]
    d = TinyDns(records={("mail.example.test.", "A"): addrs,
                         ("mail.example.test.", "AAAA"): aaaa}, upstream=w.dns)
    try:
        r = run_sender(ststest_bin, "send", w, "--dns", d.addr, "--json", RCPT)
    finally:
        d.close()
    obs = w.stop()
    res = json.loads(r.stdout)["results"][0]
    [mx] = res["mx"]
    assert mx["addresses"] == addrs + aaaa, r.stderr
    assert "trying its next address" in r.stderr
    if delivered:
        assert r.returncode == 0, r.stderr
        assert mx["address"] == live and mx["action"] == "delivered"
        assert len(messages(obs)) == 1
    else:
        assert r.returncode == 75, r.stderr
        assert mx["action"] == "tempfail" and mx["stage"] == "CONNECT"
        assert mx["address"] == "::1"
        assert obs["smtp_sessions"] == []


SLOW_POLICY = """\
name: slow-policy
refs: [RFC 8461 3.3]
about: The policy host waits 20 s before answering.
domain: example.test
dns: |
  @          MX   10 mail
  _mta-sts   TXT  "v=STSv1; id=20240101T000000;"
policy:
  mode: enforce
  mx: [mail.example.test]
  max_age: 86400
  delay: 20
mx:
  mail.example.test: {}
expect:
  enforce: {outcome: deferred}
"""


def test_time_limit_aborts_a_policy_fetch(ststest_bin, world_factory, tmp_path):
    w = world_factory(scenario_file(tmp_path, "slow-policy", SLOW_POLICY))
    start = time.monotonic()
    r = run_sender(ststest_bin, "send", w, "--json", "--time-limit", "1", RCPT)
    elapsed = time.monotonic() - start
    obs = w.stop()
    assert r.returncode == 75, r.stderr
    assert elapsed < 10, elapsed
    [res] = json.loads(r.stdout)["results"]
    assert res["outcome"] == "deferred" and res["detail"] == "time limit"
    assert res["mx"] == []
    assert messages(obs) == []
    assert "BUG" not in r.stderr
