"""`ststest check` as a postmaster's deployment check (issue 11): the verdict, the
findings with their hints, the facts per MX, and exit 0/1/2, through the real binary at
the bundled world. One test per finding the world can produce, and the healthy
deployment.

The worlds come from the scenario library where one fits, else from the small scenario
texts below (written to the test's tmp_path). The finding ids, severities and JSON keys
are the contract of README "check" (and verdict-contract.md of issue 11).
"""
import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import json_doc, run_sender, scenario_file, scenario_path, sender_args

DOMAIN = "example.test"
TLSRPT = '_smtp._tls   TXT  "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"'


def healthy(mode="enforce", max_age=604800, mx=("mail.example.test",), tlsrpt=TLSRPT,
            txt_id="20240101T000000", extra_mx=""):
    """The usual recipe: MX, _mta-sts, _smtp._tls, an enforce policy naming the MX."""
    return f"""name: check-healthy
about: A healthy MTA-STS deployment (check's tests vary one fact of it).
refs: [RFC 8461, RFC 8460 3]
domain: example.test
dns: |
  @            MX   10 mail
  _mta-sts     TXT  "v=STSv1; id={txt_id};"
  {tlsrpt}
policy:
  mode: {mode}
  mx: [{", ".join(mx)}]
  max_age: {max_age}
mx:
  mail.example.test: {{}}
{extra_mx}modes: [{mode}]
expect:
  {mode}: {{outcome: delivered}}
"""


def check(ststest_bin, world, *args, **point):
    """`ststest check --json ARGS example.test` at the world: (CompletedProcess, result)."""
    r = run_sender(ststest_bin, "check", world, "--json", *args, DOMAIN, **point)
    [res] = json_doc(r)["results"]
    return r, res


def ids(res):
    return [f["id"] for f in res["findings"]]


def finding(res, fid):
    [f] = [f for f in res["findings"] if f["id"] == fid]
    assert f["hint"] and f["detail"] and f["subject"], f
    return f


def verdict_exit(verdict):
    return {"pass": 0, "warn": 1, "fail": 2}[verdict]


@pytest.fixture
def world_of(world_factory, tmp_path):
    """world_of(text_or_path, *world_options) -> a started world."""
    def make(source, *extra):
        if isinstance(source, str):
            source = scenario_file(tmp_path, f"w{len(os.listdir(tmp_path))}", source)
        return world_factory(source, *extra)
    return make


def assert_verdict(r, res, verdict, *want):
    """The verdict, the exit status that goes with it, and that each id in `want` is a
    finding (with its hint), and the transcript's verdict block."""
    assert res["verdict"] == verdict, res["findings"]
    assert r.returncode == verdict_exit(verdict), r.stderr
    for fid in want:
        finding(res, fid)
    assert f"VERDICT {DOMAIN}: {verdict}" in r.stderr
    for f in res["findings"]:
        assert f"{f['severity']} {f['id']} {f['subject']}: " in r.stderr
        assert f"fix: {f['hint']}" in r.stderr
    severities = {f["severity"] for f in res["findings"]}
    assert verdict == ("fail" if "fail" in severities else "warn" if severities else "pass")


# ---- the healthy deployment ---------------------------------------------------------------

def test_healthy_deployment_passes(ststest_bin, world_of):
    w = world_of(healthy())
    r, res = check(ststest_bin, w)
    obs = w.stop()
    assert_verdict(r, res, "pass")
    assert res["findings"] == [] and res["would"] == "deliver" and "outcome" not in res
    assert res["drift"] is None
    assert res["tlsrpt"] == {"name": "_smtp._tls.example.test",
                             "records": ["v=TLSRPTv1; rua=mailto:tlsrpt@example.test"],
                             "valid": True, "rua": ["mailto:tlsrpt@example.test"],
                             "error": None}
    assert res["policy_fetch"] == {"ok": True, "result_type": None, "reason": None}
    # The facts of the policy host: address, TLS, the chain it sent, timings.
    ph = res["policy_host"]
    assert ph["host"] == "mta-sts.example.test"
    assert ph["address"] == w.ready["hosts"]["mta-sts.example.test"]
    assert ph["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and ph["tls"]["cipher"]
    assert [c["subject"] for c in ph["tls"]["chain"]] == ["CN=mta-sts.example.test"]
    assert ph["tls"]["chain"][0]["dns_sans"] == ["mta-sts.example.test"]
    assert set(ph["timings_ms"]) == {"dns", "connect", "handshake", "first_byte", "total"}
    assert ph["timings_ms"]["total"] >= ph["timings_ms"]["handshake"] > 0
    # The facts of the MX: the chain, TLS, timings.
    [mx] = res["mx"]
    assert mx["tls"]["version"] in ("TLSv1.2", "TLSv1.3") and mx["tls"]["cipher"]
    [leaf] = mx["tls"]["chain"]
    assert leaf["subject"] == "CN=mail.example.test"
    assert leaf["issuer"].startswith("CN=") and leaf["dns_sans"] == ["mail.example.test"]
    assert leaf["key_type"] in ("EC", "RSA", "ED25519") and leaf["key_bits"] >= 256
    assert leaf["days_left"] > 14 and leaf["not_after"].endswith("Z")
    assert set(mx["timings_ms"]) == {"dns", "connect", "banner", "ehlo", "starttls",
                                     "handshake", "ehlo_tls"}
    assert all(v >= 0 for v in mx["timings_ms"].values())
    assert mx["timings_ms"]["handshake"] > 0
    # No mail: EHLO, STARTTLS, EHLO, QUIT; the _smtp._tls record was asked for.
    [sess] = obs["smtp_sessions"]
    assert [c["verb"] for c in sess["commands"]] == ["EHLO", "STARTTLS", "EHLO", "QUIT"]
    assert any(q["name"] == "_smtp._tls.example.test" and q["type"] == "TXT"
               for q in obs["dns"])
    # The transcript: the facts and the verdict block; stdout names the verdict.
    assert "FACTS mail.example.test: cert 0: subject CN=mail.example.test" in r.stderr
    assert "FACTS mail.example.test: timings ms: dns " in r.stderr
    assert "FACTS mta-sts.example.test: cert 0: subject CN=mta-sts.example.test" in r.stderr
    assert "a sender would have it delivered" in r.stderr


def test_text_output_names_the_verdict(ststest_bin, world_of):
    w = world_of(healthy(mode="testing"))
    r = run_sender(ststest_bin, "check", w, DOMAIN)
    w.stop()
    assert r.returncode == 1, r.stderr
    assert r.stdout == f"{DOMAIN}: warn (1 finding)\n"


# ---- MX certificates ----------------------------------------------------------------------

def test_wrong_name_certificate(ststest_bin, world_of):
    w = world_of(scenario_path("bad-san"))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "mx-cert-name-mismatch")
    f = finding(res, "mx-cert-name-mismatch")
    assert f["subject"] == "mail.example.test"
    assert f["detail"] == "certificate names wrong.example.test, MX is mail.example.test"
    assert f["hint"] == ("reissue the certificate for mail.example.test with that name as a "
                         "DNS SAN")
    assert res["would"] == "defer"


def test_expired_certificate(ststest_bin, world_of):
    w = world_of(scenario_path("expired-cert"))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "mx-cert-expired")
    assert "mx-cert-name-mismatch" not in ids(res)  # a different sentence and fix
    assert finding(res, "mx-cert-expired")["hint"].startswith("renew the certificate")
    assert res["mx"][0]["tls"]["chain"][0]["days_left"] < 0


@pytest.mark.parametrize("days_left,warn_days,expiring", [
    (5, None, True),     # the default --warn-days 14
    (20, None, False),
    (20, "30", True),
    (5, "0", False),
])
def test_certificate_expiring(ststest_bin, world_of, days_left, warn_days, expiring):
    # The world mints certificates valid from now; --now moves check's clock to
    # `days_left` days before the MX certificate's not_after.
    w = world_of(healthy())
    _, first = check(ststest_bin, w)
    not_after = datetime.datetime.strptime(first["mx"][0]["tls"]["not_after"],
                                           "%Y-%m-%dT%H:%M:%SZ")
    now = (not_after - datetime.timedelta(days=days_left, hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    extra = ["--warn-days", warn_days] if warn_days else []
    r, res = check(ststest_bin, w, "--now", now, *extra)
    w.stop()
    if expiring:
        assert_verdict(r, res, "warn", "mx-cert-expiring")
        assert f"expires in {days_left}." in finding(res, "mx-cert-expiring")["detail"]
    else:
        assert_verdict(r, res, "pass")
    assert res["mx"][0]["tls"]["chain"][0]["days_left"] == days_left


def test_self_signed_certificate_is_untrusted(ststest_bin, world_of):
    w = world_of(scenario_path("self-signed"))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "mx-cert-untrusted")


# ---- MX: STARTTLS, TLS versions, policy ---------------------------------------------------

def test_no_starttls(ststest_bin, world_of):
    w = world_of(scenario_path("no-starttls"))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "mx-starttls-missing")
    assert "not offered" in finding(res, "mx-starttls-missing")["detail"]


def test_tls_1_0_only_mx(ststest_bin, world_of):
    # check accepts TLS 1.0 to see it (a sender requiring TLS 1.2 would fail the
    # handshake): the finding is mx-tls-too-old, not a handshake failure.
    w = world_of(scenario_path("mx-tls-1.0-only"), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "mx-tls-too-old")
    assert "mx-tls-handshake-failed" not in ids(res)
    assert res["mx"][0]["tls"]["version"] == "TLSv1"
    assert res["would"] == "defer"


def test_mx_not_in_policy_is_still_probed(ststest_bin, world_of):
    w = world_of(scenario_path("mx-not-in-policy"), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    obs = w.stop()
    assert_verdict(r, res, "fail", "mx-not-in-policy")
    refused = [m for m in res["mx"] if m["policy_match"] is False]
    assert refused, res["mx"]
    for m in refused:
        # The refusal decides the verdict, not whether we look: its facts are there.
        assert m["action"] == "refused" and m["probed_refused"] is True
        assert m["connected"] is True and m["tls"]["chain"], m
        assert finding(res, "mx-not-in-policy")["subject"] in [m["host"] for m in refused]
    assert {s["host"] for s in obs["smtp_sessions"]} >= {m["host"] for m in refused}


def test_policy_pattern_matching_no_mx(ststest_bin, world_of):
    w = world_of(healthy(mx=("mail.example.test", "old.example.test")))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "policy-mx-unused")
    assert "old.example.test" in finding(res, "policy-mx-unused")["detail"]


# ---- the policy ---------------------------------------------------------------------------

def test_mode_testing(ststest_bin, world_of):
    w = world_of(healthy(mode="testing"))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "policy-mode-testing")
    assert ids(res) == ["policy-mode-testing"]


def test_max_age_short(ststest_bin, world_of):
    w = world_of(healthy(max_age=3600))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "policy-max-age-short")
    assert "3600" in finding(res, "policy-max-age-short")["detail"]


@pytest.mark.parametrize("scenario,reason", [
    ("policy-404", "HTTP status 404"),
    ("policy-wrong-content-type", "Content-Type text/html is not text/plain"),
    ("policy-redirect", "redirect"),
])
def test_policy_fetch_failed(ststest_bin, world_of, scenario, reason):
    w = world_of(scenario_path(scenario), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "policy-fetch-failed")
    f = finding(res, "policy-fetch-failed")
    assert f["subject"] == "mta-sts.example.test"
    assert "new senders get no MTA-STS" in f["detail"] and reason in f["detail"]
    assert res["policy_fetch"]["ok"] is False
    assert res["policy_fetch"]["result_type"] == "sts-policy-fetch-error"
    assert reason in res["policy_fetch"]["reason"]


def test_policy_host_down(ststest_bin, world_of):
    # Nothing listens where the policy host should be: connection refused.
    w = world_of(healthy())
    r, res = check(ststest_bin, w, "--https-port", "1")
    w.stop()
    assert_verdict(r, res, "fail", "policy-fetch-failed")
    assert res["policy_fetch"]["reason"], res["policy_fetch"]


@pytest.mark.parametrize("scenario", ["policy-bad-cert", "policy-unknown-ca",
                                      "policy-expired-cert"])
def test_policy_host_certificate(ststest_bin, world_of, scenario):
    w = world_of(scenario_path(scenario), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "policy-host-cert-invalid")
    assert res["policy_fetch"]["result_type"] == "sts-webpki-invalid"
    assert res["policy_fetch"]["reason"]
    # The chain that failed is reported all the same.
    assert res["policy_host"]["tls"]["chain"], res["policy_host"]


def test_policy_invalid(ststest_bin, world_of):
    w = world_of(scenario_path("policy-bad-mode"), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "policy-invalid")


# ---- DNS records --------------------------------------------------------------------------

def test_no_sts_record(ststest_bin, world_of):
    w = world_of(scenario_path("no-sts-record"), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "sts-record-missing")
    assert finding(res, "sts-record-missing")["subject"] == "_mta-sts.example.test"


def test_null_mx_needs_neither_mta_sts_nor_tlsrpt(ststest_bin, world_of):
    # RFC 7505: a domain that takes no mail has nothing for MTA-STS to protect.
    w = world_of(scenario_path("null-mx"), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "pass")
    assert res["null_mx"] is True and res["mx"] == [] and res["would"] == "fail"


def test_two_sts_records(ststest_bin, world_of):
    w = world_of(scenario_path("txt-two-records"), "--mode", "enforce")
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "fail", "sts-record-invalid")


def test_tlsrpt_missing(ststest_bin, world_of):
    w = world_of(healthy(tlsrpt=""))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "tlsrpt-missing")
    assert ids(res) == ["tlsrpt-missing"]
    assert res["tlsrpt"]["valid"] is False and res["tlsrpt"]["records"] == []


@pytest.mark.parametrize("record", [
    '"v=TLSRPTv2; rua=mailto:tlsrpt@example.test"',
    '"v=TLSRPTv1; rua=ftp://example.test/"',
])
def test_tlsrpt_invalid(ststest_bin, world_of, record):
    w = world_of(healthy(tlsrpt=f"_smtp._tls   TXT  {record}"))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "tlsrpt-invalid")
    assert res["tlsrpt"]["valid"] is False and res["tlsrpt"]["error"]
    assert res["tlsrpt"]["records"] == [json.loads(record)]


def test_two_tlsrpt_records(ststest_bin, world_of):
    two = TLSRPT + '\n  _smtp._tls   TXT  "v=TLSRPTv1; rua=mailto:other@example.test"'
    w = world_of(healthy(tlsrpt=two))
    r, res = check(ststest_bin, w)
    w.stop()
    assert_verdict(r, res, "warn", "tlsrpt-invalid")
    assert len(res["tlsrpt"]["records"]) == 2


# ---- the cache: fresh discovery, drift ----------------------------------------------------

def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_ignores_a_cached_policy_for_its_verdict(ststest_bin, world_of, tmp_path):
    # send caches the policy; the policy host then serves text/html. A sender with the
    # cache would still deliver under the cached policy; check fetches afresh and fails.
    cache = tmp_path / "cache.sqlite"
    w = world_of(healthy())
    s = run_sender(ststest_bin, "send", w, "postmaster@example.test", cache=cache)
    w.stop()
    assert s.returncode == 0, s.stderr
    w = world_of(scenario_path("policy-wrong-content-type"), "--mode", "enforce")
    before = digest(cache)
    r, res = check(ststest_bin, w, cache=cache)
    w.stop()
    assert_verdict(r, res, "fail", "policy-fetch-failed")
    assert res["policy"]["source"] == "none"
    assert digest(cache) == before  # only read


@pytest.mark.parametrize("second,kind,fid,verdict", [
    # the policy changed, the TXT id did not
    (dict(max_age=1209600), "policy-changed-same-id", "policy-drift-same-id", "fail"),
    # the TXT id changed, the policy did not
    (dict(txt_id="20250101T000000"), "id-changed-same-policy", "policy-drift-id-only", "warn"),
])
def test_drift_against_the_cache(ststest_bin, world_of, tmp_path, second, kind, fid, verdict):
    cache = tmp_path / "cache.sqlite"
    w = world_of(healthy())
    s = run_sender(ststest_bin, "send", w, "postmaster@example.test", cache=cache)
    w.stop()
    assert s.returncode == 0, s.stderr
    w = world_of(healthy(**second))
    before = digest(cache)
    r, res = check(ststest_bin, w, cache=cache)
    w.stop()
    assert_verdict(r, res, verdict, fid)
    assert res["drift"]["kind"] == kind
    assert res["drift"]["cached_id"] == "20240101T000000"
    assert res["drift"]["served_id"] == second.get("txt_id", "20240101T000000")
    if fid == "policy-drift-same-id":
        assert "bump the TXT id" in finding(res, fid)["hint"]
    assert digest(cache) == before
    # Without --cache there is nothing to compare with: no drift.
    w = world_of(healthy(**second))
    r, res = check(ststest_bin, w)
    w.stop()
    assert res["drift"] is None and fid not in ids(res)


def test_check_creates_no_policy_cache(ststest_bin, world_of, tmp_path):
    w = world_of(healthy())
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    argv = [ststest_bin, "check", *[a for a in sender_args(w) if a != "--no-cache"], DOMAIN]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    w.stop()
    assert r.returncode == 0, r.stderr
    # The only file check keeps there is the TLS report store (RFC 8460: check's
    # sessions count in the reports too); no policy cache is created or read.
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert [m for m in made if "policy-cache" in m] == [], made
    assert "xdg/ststest/tlsrpt-store.sqlite" in made, made
    assert not (tmp_path / ".cache").exists()
    # With --no-report-store, nothing at all.
    shutil.rmtree(tmp_path / "xdg")
    w = world_of(healthy())
    argv = [ststest_bin, "check", *[a for a in sender_args(w) if a != "--no-cache"],
            "--no-report-store", DOMAIN]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    w.stop()
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "xdg").exists() and not (tmp_path / ".cache").exists()


# ---- several domains, the EHLO name --------------------------------------------------------

def test_exit_status_is_the_worst_verdict(ststest_bin, world_of):
    # example.test passes; nosuch.test has no MX and no address (mx-unreachable: fail).
    w = world_of(healthy())
    r = run_sender(ststest_bin, "check", w, "--json", DOMAIN, "nosuch.test")
    w.stop()
    a, b = json_doc(r)["results"]
    assert a["verdict"] == "pass" and b["verdict"] == "fail", (a["findings"], b["findings"])
    assert r.returncode == 2


@pytest.mark.parametrize("arg", ["bad domain!", "", "user@", "a..b/c"])
def test_a_domain_that_is_not_a_name_is_a_usage_error(ststest_bin, arg):
    r = subprocess.run([ststest_bin, "check", "--no-cache", arg], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 64, r.stderr
    assert f"'{arg}' is not a domain name" in r.stderr


def test_ehlo_name_is_fqdn_or_address_literal(ststest_bin, world_of):
    w = world_of(healthy())
    r, res = check(ststest_bin, w, "-v")
    w.stop()
    host = socket.gethostname()
    try:
        canon = socket.getaddrinfo(host, None, flags=socket.AI_CANONNAME)[0][3]
    except OSError:
        canon = ""
    name = host if "." in host else canon if "." in canon else None
    ehlo = [l.split("--> EHLO ", 1)[1] for l in r.stderr.splitlines() if "--> EHLO " in l]
    if name:
        assert ehlo == [name], ehlo
    else:
        assert ehlo and ehlo[0].startswith("[127.") and ehlo[0].endswith("]"), ehlo
    w = world_of(healthy())
    r2, _ = check(ststest_bin, w, "--helo", "mx.sender.example")
    w.stop()
    assert "--> EHLO mx.sender.example" in r2.stderr
    # send: the MAIL FROM domain is the same name.
    w = world_of(healthy())
    s = run_sender(ststest_bin, "send", w, "postmaster@example.test")
    w.stop()
    mail = [l.split("~~> MAIL FROM:", 1)[1] for l in s.stderr.splitlines() if "~~> MAIL FROM:" in l]
    assert mail and mail[0].startswith(f"<ststest@{name or ehlo[0][:5]}"), mail
