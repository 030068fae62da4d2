"""`ststest check` as a postmaster's deployment check, against a deployment built from real
parts exactly as the usual MTA-STS recipe has it (issue 11): dnsmasq serving the MX, the A
records, `_mta-sts` and `_smtp._tls` TXT; nginx returning the policy with
`return 200 "..."` as text/plain; a private Postfix with a certificate for its MX name. See
tests/integration/realworld.py for how the world is built, reconfigured and stopped.

First the world itself is proven with independent tools (dig, curl, openssl s_client) and with
a real delivery (`ststest send` into Postfix's mailbox over verified TLS). Then: the healthy
deployment gives `verdict: pass` and exit 0, and each break case gives the verdict, the finding
(id, severity, subject), a one-line hint and the exit status of `check`'s verdict (0 pass,
1 warn, 2 fail), as issue 11 fixes them (README "Testing a real deployment" has the table).

dnsmasq and nginx run as any user; a missing one FAILS the tests, naming the package. Postfix
needs root: the tests that need it skip, saying so, when not root (and fail when Postfix is
unusable; STSTEST_NO_POSTFIX=1 skips them).
"""
import hashlib
import json
import re
import subprocess
import time
from datetime import datetime, timezone

import pytest

from conftest import need
from postfix_fixture import received_header
from realworld import (DOMAIN, MAILBOX, MX_HOST, POLICY, POLICY_HOST, POLICY_PATH,  # noqa: F401
                       STS_ID, STS_NAME, TLSRPT, TLSRPT_NAME, realworld, world)

# The severity of each finding id these tests expect (issue 11's table of findings).
SEVERITY = {
    "mx-cert-name-mismatch": "fail", "mx-cert-expired": "fail", "mx-cert-expiring": "warn",
    "mx-starttls-missing": "fail", "mx-not-in-policy": "fail", "policy-mx-unused": "warn",
    "policy-fetch-failed": "fail", "policy-host-cert-invalid": "fail",
    "tlsrpt-invalid": "warn", "tlsrpt-missing": "warn", "policy-drift-same-id": "fail",
    "policy-drift-id-only": "warn", "assure-tls-accepted": "fail",
}
EXIT = {"pass": 0, "warn": 1, "fail": 2}
# What a finding may be about when the contract leaves the choice to the checker (a policy
# finding: the policy host or the TXT record that names the policy).
POLICY_SUBJECTS = (POLICY_HOST, STS_NAME)


def dump(r, res):
    return (f"exit {r.returncode}\n{json.dumps(res, indent=1)}\nstderr (tail):\n"
            f"{r.stderr[-3000:]}")


def assert_verdict(r, res, verdict, findings, exit_code=None):
    """The domain's verdict, exactly these findings ({id: subject or tuple of subjects}), each
    with the contract's severity, a detail and a one-line hint, and the exit status (EXIT of
    the verdict unless `exit_code`). Returns {id: finding}."""
    ctx = dump(r, res)
    assert res.get("verdict") == verdict, ctx
    got = {f["id"]: f for f in res.get("findings", [])}
    assert sorted(got) == sorted(findings), ctx
    assert len(res["findings"]) == len(got), f"a finding reported twice:\n{ctx}"
    for fid, subjects in findings.items():
        f = got[fid]
        subjects = (subjects,) if isinstance(subjects, str) else subjects
        assert f["severity"] == SEVERITY[fid], ctx
        assert f["subject"] in subjects, ctx
        assert isinstance(f["detail"], str) and f["detail"].strip(), ctx
        hint = f["hint"]
        assert isinstance(hint, str) and hint.strip() and "\n" not in hint, ctx
    want = EXIT[verdict] if exit_code is None else exit_code
    assert r.returncode == want, ctx
    return got


def policy_fetches(world):
    """The access log's requests for the policy (nginx's log: the request reached it)."""
    return [l for l in world.nginx.requests() if f"GET {POLICY_PATH} " in l]


# ---- the world is real: independent tools and a real delivery ---------------------------

def dig(world, name, rtype, *opts):
    r = subprocess.run([need("dig"), f"@{world.dns.address}", "-p", str(world.dns.port),
                        "+time=2", "+tries=1", *opts, name, rtype],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_dnsmasq_serves_the_zone(world):
    short = lambda name, rtype: dig(world, name, rtype, "+short").splitlines()  # noqa: E731
    assert short(DOMAIN, "MX") == [f"10 {MX_HOST}."]
    assert short(MX_HOST, "A") == [world.addr["mx"]]
    assert short(POLICY_HOST, "A") == [world.addr["policy"]]
    assert short(STS_NAME, "TXT") == [f'"v=STSv1; id={STS_ID};"']
    assert short(TLSRPT_NAME, "TXT") == [f'"{TLSRPT}"']
    # Authoritative for the zone only: another name in it does not exist; nothing is forwarded.
    assert "status: NXDOMAIN" in dig(world, f"nowhere.{DOMAIN}", "A")
    assert "status: REFUSED" in dig(world, "example.com", "A")
    # A change is served as soon as apply() returns.
    world.apply(mx=False, sts_txt=["v=STSv1; id=changed;"],
                tlsrpt_txt=["v=TLSRPTv2; rua=mailto:x@example.test"])
    assert short(STS_NAME, "TXT") == ['"v=STSv1; id=changed;"']
    assert short(TLSRPT_NAME, "TXT") == ['"v=TLSRPTv2; rua=mailto:x@example.test"']
    assert short(DOMAIN, "MX") == [f"10 {MX_HOST}."]
    assert f"query[TXT] {STS_NAME} from" in world.dns.log()


def curl(world, cafile=None):
    """curl at https://mta-sts.example.test:PORT/.well-known/mta-sts.txt (the address from
    dnsmasq's A record), trusting the world's CA or `cafile`: (exit, status, type, body)."""
    host = f"{POLICY_HOST}:{world.nginx.port}"
    r = subprocess.run([need("curl"), "-sS", "--max-time", "10",
                        "--cacert", str(cafile or world.ca_file),
                        "--resolve", f"{host}:{world.addr['policy']}",
                        "-w", "\n%{http_code} %{content_type}", f"https://{host}{POLICY_PATH}"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return r.returncode, None, None, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    status, _, ctype = tail.partition(" ")
    return 0, int(status), ctype, body


def test_nginx_serves_the_policy(world):
    assert curl(world) == (0, 200, "text/plain", POLICY)
    assert POLICY.endswith("max_age: 604800\n") and "mode: enforce\n" in POLICY
    world.apply(mx=False, content_type="text/html")
    assert curl(world) == (0, 200, "text/html", POLICY)
    # The untrusted certificate: curl with the world's CA refuses it (exit 60), with the CA
    # that issued it accepts it: so only the trust is wrong, not the name.
    world.apply(mx=False, policy_cert="untrusted")
    rc, _, _, err = curl(world)
    assert rc == 60 and "certificate" in err, err
    assert curl(world, cafile=world.certs.untrusted_ca.cert)[:2] == (0, 200)
    world.apply(mx=False, nginx=False)
    rc, _, _, err = curl(world)
    assert rc == 7, err  # couldn't connect
    world.apply(mx=False)
    assert curl(world) == (0, 200, "text/plain", POLICY)


def s_client(world):
    """openssl s_client -starttls smtp at the Postfix MX, verifying mail.example.test against
    the world's CA: (exit, output)."""
    r = subprocess.run([need("openssl"), "s_client",
                        "-connect", f"{world.postfix.address}:{world.mx_port}",
                        "-starttls", "smtp", "-servername", MX_HOST,
                        "-CAfile", str(world.ca_file), "-verify_hostname", MX_HOST,
                        "-verify_return_error"],
                       input="QUIT\r\n", capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def days_left(pem_text):
    """Days until the notAfter of the first certificate in `pem_text` (openssl x509)."""
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem_text, re.S)
    assert m, pem_text
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601"],
                       input=m.group(0), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    end = datetime.strptime(r.stdout.strip().removeprefix("notAfter="), "%Y-%m-%d %H:%M:%SZ")
    return (end.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds() / 86400


def test_postfix_serves_each_certificate(world):
    world.apply()
    rc, out = s_client(world)
    assert rc == 0 and "Verify return code: 0 (ok)" in out, out
    assert days_left(out) > 80
    world.apply(mx_cert="wrong-name")
    rc, out = s_client(world)
    assert rc != 0 and "hostname mismatch" in out, out
    world.apply(mx_cert="expired")
    rc, out = s_client(world)
    assert rc != 0 and "certificate has expired" in out, out
    world.apply(mx_cert="expiring")
    rc, out = s_client(world)
    assert rc == 0 and "Verify return code: 0 (ok)" in out, out
    assert 4.9 < days_left(out) <= 5, out
    # STARTTLS off: the EHLO reply lists no STARTTLS.
    world.apply(tls_level="none")
    rc, out = s_client(world)
    assert rc != 0 and "Didn't find STARTTLS" in out, out


def test_send_delivers_over_verified_tls(world):
    """`ststest send` through the same world: MTA-STS discovered through dnsmasq, the policy
    fetched from nginx, the message delivered into Postfix's mailbox over verified TLS."""
    world.apply()
    pf = world.postfix
    mark, before, fetches = pf.log_mark(), len(pf.messages()), len(policy_fetches(world))
    r, res = world.run("send", "--helo", "sender.example.net", target=MAILBOX)
    assert r.returncode == 0, dump(r, res)
    assert res["outcome"] == "delivered", dump(r, res)
    pol = res["policy"]
    assert (pol["source"], pol["mode"], pol["id"], pol["mx"]) == \
        ("fetched", "enforce", STS_ID, [MX_HOST]), pol
    [mx] = res["mx"]
    assert (mx["host"], mx["address"], mx["action"]) == (MX_HOST, world.addr["mx"], "delivered")
    assert mx["tls"]["verified"] is True and mx["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    msgs = pf.wait_messages(before + 1)
    rcv = received_header(msgs[-1])
    assert "from sender.example.net" in rcv and f"by {MX_HOST} (Postfix) with ESMTPS" in rcv, rcv
    qid = pf.wait_log(r"postfix/smtpd\[\d+\]: ([0-9A-F]{6,}): client=", mark).group(1)
    assert qid in mx["detail"], (qid, mx["detail"])
    pf.wait_log(r"status=sent", mark)  # postlogd may log the delivery after the mailbox has it
    # Each part saw its share: dnsmasq the queries, nginx the fetch.
    log = world.dns.log()
    for q in (f"query[TXT] {STS_NAME}", f"query[MX] {DOMAIN}", f"query[A] {MX_HOST}",
              f"query[A] {POLICY_HOST}"):
        assert q in log, q
    assert len(policy_fetches(world)) == fetches + 1, world.nginx.requests()
    assert '" 200 ' in policy_fetches(world)[-1]


# ---- check: the verdict of the healthy deployment and of each break ---------------------

def assert_no_mail(world, mark):
    """`check` sent no mail: no envelope in smtpd's log after `mark`, nothing queued."""
    log = world.postfix.log_since(mark)
    assert not re.search(r"postfix/smtpd\[\d+\]: [0-9A-F]{6,}: client=", log), log
    assert not re.search(r"disconnect from .*\b(mail|rcpt|data|bdat)=", log), log


def test_healthy_deployment_passes(world):
    world.apply()
    mark, fetches = world.postfix.log_mark(), len(policy_fetches(world))
    r, res = world.run("check")
    assert_verdict(r, res, "pass", {})
    assert res["would"] == "deliver", dump(r, res)
    pol = res["policy"]
    assert (pol["mode"], pol["id"], pol["mx"], pol["max_age"]) == \
        ("enforce", STS_ID, [MX_HOST], 604800), pol
    [mx] = res["mx"]
    assert (mx["host"], mx["address"]) == (MX_HOST, world.addr["mx"]), mx
    assert mx["tls"]["verified"] is True and mx["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    tlsrpt = res["tlsrpt"]
    assert {k: tlsrpt[k] for k in ("name", "records", "valid", "rua", "error")} == \
        {"name": TLSRPT_NAME, "records": [TLSRPT], "valid": True,
         "rua": ["mailto:tlsrpt@example.test"], "error": None}, tlsrpt
    assert res["drift"] is None, res["drift"]
    # It fetched the policy from nginx (never trusting a cache), and sent no mail.
    assert len(policy_fetches(world)) == fetches + 1
    time.sleep(0.2)  # postlogd writes asynchronously
    assert_no_mail(world, mark)


OTHER_MX_POLICY = POLICY.replace(f"mx: {MX_HOST}", "mx: mx.example.net")
assert OTHER_MX_POLICY != POLICY

# (world breaks, verdict, {finding id: subject(s)}, what a sender would do, a word the
# detail of the first finding must carry). The MX breaks first: each is a listener of its
# own, then the DNS and policy-host breaks, each a reconfiguration of dnsmasq or nginx.
BREAKS = [
    pytest.param({"mx_cert": "wrong-name"}, "fail", {"mx-cert-name-mismatch": MX_HOST},
                 "defer", "mx.example.net", id="mx-wrong-name"),
    pytest.param({"mx_cert": "expired"}, "fail", {"mx-cert-expired": MX_HOST},
                 "defer", "expired", id="mx-expired"),
    pytest.param({"mx_cert": "expiring"}, "warn", {"mx-cert-expiring": MX_HOST},
                 "deliver", None, id="mx-expiring-in-5-days"),
    pytest.param({"tls_level": "none"}, "fail", {"mx-starttls-missing": MX_HOST},
                 "defer", "STARTTLS", id="starttls-off"),
    pytest.param({"policy": OTHER_MX_POLICY}, "fail",
                 {"mx-not-in-policy": MX_HOST, "policy-mx-unused": POLICY_SUBJECTS},
                 "defer", None, id="policy-mx-without-the-mx"),
    pytest.param({"content_type": "text/html"}, "fail", {"policy-fetch-failed": POLICY_HOST},
                 "deliver", "text/html", id="policy-as-text-html"),
    pytest.param({"nginx": False}, "fail", {"policy-fetch-failed": POLICY_HOST},
                 "deliver", "connect", id="nginx-down"),
    pytest.param({"policy_cert": "untrusted"}, "fail",
                 {"policy-host-cert-invalid": POLICY_HOST}, "deliver", "certificate",
                 id="policy-host-cert-untrusted"),
    pytest.param({"tlsrpt_txt": ["v=TLSRPTv2; rua=mailto:tlsrpt@example.test"]}, "warn",
                 {"tlsrpt-invalid": TLSRPT_NAME}, "deliver", None, id="tlsrpt-v2"),
    pytest.param({"tlsrpt_txt": []}, "warn", {"tlsrpt-missing": TLSRPT_NAME}, "deliver",
                 None, id="tlsrpt-missing"),
]


@pytest.mark.parametrize("breaks,verdict,findings,would,detail_word", BREAKS)
def test_break(world, breaks, verdict, findings, would, detail_word):
    world.apply(**breaks)
    mark = world.postfix.log_mark()
    r, res = world.run("check")
    got = assert_verdict(r, res, verdict, findings)
    assert res["would"] == would, dump(r, res)
    if detail_word:
        first = got[next(iter(findings))]
        assert detail_word.lower() in first["detail"].lower(), dump(r, res)
    # Whatever broke, the MX was probed and its facts reported, and no mail was sent.
    assert [m["host"] for m in res["mx"]] == [MX_HOST], dump(r, res)
    time.sleep(0.2)
    assert_no_mail(world, mark)


def test_break_tlsrpt_reports_why(world):
    """The invalid TLSRPT record is in the JSON with the reason (RFC 8460 3: v=TLSRPTv1
    first)."""
    bad = "v=TLSRPTv2; rua=mailto:tlsrpt@example.test"
    world.apply(tlsrpt_txt=[bad])
    r, res = world.run("check")
    t = res["tlsrpt"]
    assert (t["name"], t["records"], t["valid"]) == (TLSRPT_NAME, [bad], False), t
    assert isinstance(t["error"], str) and t["error"].strip(), t


def cache_digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_policy(world, cache):
    """Fill the policy cache FILE as a sender does: `ststest send --cache FILE` of a message
    through the healthy world (delivered, policy fetched and stored)."""
    world.apply()
    r, res = world.run("send", "--helo", "sender.example.net", cache=cache, target=MAILBOX)
    assert r.returncode == 0 and res["outcome"] == "delivered", dump(r, res)
    assert res["policy"]["source"] == "fetched" and res["policy"]["id"] == STS_ID, res["policy"]
    assert cache.exists()


NEW_ID = "20261207T000000"


def test_drift_id_changed_same_policy(world, tmp_path):
    cache = tmp_path / "policy-cache.sqlite"
    cache_policy(world, cache)
    world.apply(sts_txt=[f"v=STSv1; id={NEW_ID};"])
    before = cache_digest(cache)
    r, res = world.run("check", cache=cache)
    assert_verdict(r, res, "warn", {"policy-drift-id-only": POLICY_SUBJECTS})
    assert res["drift"] == {"kind": "id-changed-same-policy", "cached_id": STS_ID,
                            "served_id": NEW_ID}, dump(r, res)
    assert cache_digest(cache) == before, "check wrote the policy cache (it may only read it)"


def test_drift_policy_changed_same_id(world, tmp_path):
    cache = tmp_path / "policy-cache.sqlite"
    cache_policy(world, cache)
    changed = POLICY.replace("max_age: 604800", "max_age: 1209600")
    assert changed != POLICY
    world.apply(policy=changed)
    before = cache_digest(cache)
    fetches = len(policy_fetches(world))
    r, res = world.run("check", cache=cache)
    assert_verdict(r, res, "fail", {"policy-drift-same-id": POLICY_SUBJECTS})
    assert res["drift"] == {"kind": "policy-changed-same-id", "cached_id": STS_ID,
                            "served_id": STS_ID}, dump(r, res)
    # The verdict is about the served policy, fetched afresh, not the cached one.
    assert res["policy"]["max_age"] == 1209600, res["policy"]
    assert len(policy_fetches(world)) == fetches + 1
    assert cache_digest(cache) == before, "check wrote the policy cache (it may only read it)"


@pytest.mark.parametrize("level,assuredness,mx_verdict,verdict,findings,exit_code", [
    # STARTTLS offered, mail in the clear accepted at RCPT.
    ("may", 0, "accepted", "fail", {"assure-tls-accepted": MX_HOST}, 1),
    # 530 5.7.0 Must issue a STARTTLS command first.
    ("encrypt", 100, "refused", "pass", {}, 0),
])
def test_assure_tls(world, level, assuredness, mx_verdict, verdict, findings, exit_code):
    world.apply(tls_level=level)
    mark = world.postfix.log_mark()
    r, res = world.run("check", "--assure-tls")
    a = res["assure_tls"]
    assert a["assuredness"] == assuredness, dump(r, res)
    [mx] = a["mx"]
    assert (mx["host"], mx["address"], mx["verdict"]) == \
        (MX_HOST, world.addr["mx"], mx_verdict), mx
    assert_verdict(r, res, verdict, findings, exit_code=exit_code)
    # Never DATA and never STARTTLS: smtpd counts the commands it saw.
    line = world.postfix.wait_log(r"postfix/smtpd\[\d+\]: disconnect from \S+ (.*)",
                                  mark).group(1)
    assert "data=" not in line and "starttls=" not in line, line
    assert ("rcpt=" in line) == (level == "may"), line
