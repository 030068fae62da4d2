"""`ststest check --assure-tls` (CheckTLS's TestReceiverAssureTLS) through the real binary
against the fake world: MX hosts with `require_tls: true` refuse MAIL in the clear
(assuredness 100, exit 0); one MX that accepts RCPT in the clear is enough for
assuredness 0 (exit 1). Whatever the verdict, the world must see MAIL and RCPT at most,
never DATA and never a message; and the probe is not reachable from `send`.
"""
import pytest

from conftest import run_sender, scenario_file, scenario_path, send_json

DOMAIN = "example.test"


def verbs_by_host(observed):
    out = {}
    for s in observed["smtp_sessions"]:
        out.setdefault(s["host"], []).extend(c["verb"] for c in s["commands"])
    return out


def assert_no_message(observed):
    for s in observed["smtp_sessions"]:
        assert "DATA" not in [c["verb"] for c in s["commands"]], s
        assert not s.get("messages"), s


def test_every_mx_refuses(ststest_bin, world_factory):
    w = world_factory(scenario_path("assure-tls-refused"))
    r, doc = send_json(ststest_bin, w, "--assure-tls", command="check", target=DOMAIN)
    obs = w.stop()
    assert r.returncode == 0, r.stderr
    [res] = doc["results"]
    a = res["assure_tls"]
    assert a["assuredness"] == 100
    assert [m["host"] for m in a["mx"]] == ["mail.example.test", "mail2.example.test"]
    for m in a["mx"]:
        assert m["verdict"] == "refused"
        assert m["stage"] == "mail"
        assert m["reply"].startswith("530 5.7.0")
        assert m["address"] == w.ready["hosts"][m["host"]]
    # The STARTTLS offer was ignored; MAIL went in the clear and was refused.
    for host, verbs in verbs_by_host(obs).items():
        assert verbs == ["EHLO", "MAIL", "QUIT"], (host, verbs)
    assert all(not c["tls"] for s in obs["smtp_sessions"] for c in s["commands"])
    assert_no_message(obs)
    assert "assure example.test: assuredness 100" in r.stderr
    assert res["verdict"] == "pass" and res["findings"] == []
    assert "VERDICT example.test: pass" in r.stderr


def test_one_mx_accepts_in_the_clear(ststest_bin, world_factory):
    w = world_factory(scenario_path("assure-tls-accepted"))
    r, doc = send_json(ststest_bin, w, "--assure-tls", command="check", target=DOMAIN)
    obs = w.stop()
    assert r.returncode == 1, r.stderr
    a = doc["results"][0]["assure_tls"]
    assert a["assuredness"] == 0
    verdicts = {m["host"]: (m["verdict"], m["stage"]) for m in a["mx"]}
    assert verdicts == {"mail.example.test": ("refused", "mail"),
                        "backup.example.test": ("accepted", "rcpt")}
    assert verbs_by_host(obs)["backup.example.test"] == ["EHLO", "MAIL", "RCPT", "QUIT"]
    assert_no_message(obs)
    assert "mx backup.example.test [" in r.stderr and "] accepted at rcpt: 250" in r.stderr
    # The finding of the contract, with its hint.
    res = doc["results"][0]
    assert res["verdict"] == "fail"
    [f] = res["findings"]
    assert f["id"] == "assure-tls-accepted" and f["severity"] == "fail"
    assert f["subject"] == "backup.example.test" and "in the clear" in f["detail"]
    assert "smtpd_tls_security_level = encrypt" in f["hint"]
    assert "VERDICT example.test: fail" in r.stderr


def test_text_output_and_refusals_at_other_stages(ststest_bin, world_factory, tmp_path):
    scn = scenario_file(tmp_path, "stages", """\
name: stages
about: refusals at the banner, at EHLO, at RCPT, and a close before RCPT; one MX unreachable
refs: [RFC 5321 4.2]
domain: example.test
dns: |
  @          MX   10 banner
  @          MX   20 ehlo
  @          MX   30 rcpt
  @          MX   40 drop
  @          MX   50 nowhere.invalid.
mx:
  banner.example.test: {greeting: "554 5.3.2 no service"}
  ehlo.example.test: {replies: {ehlo: "550 5.7.1 go away"}}
  rcpt.example.test: {replies: {rcpt: "530 5.7.0 Must issue a STARTTLS command first"}}
  drop.example.test: {disconnect_after: mail}
expect:
  enforce: {outcome: delivered}
""")
    w = world_factory(scn)
    r, doc = send_json(ststest_bin, w, "--assure-tls", command="check", target=DOMAIN)
    obs = w.stop()
    a = doc["results"][0]["assure_tls"]
    got = {m["host"].split(".")[0]: (m["verdict"], m["stage"]) for m in a["mx"]}
    # Only a refusal of MAIL or RCPT for want of TLS (530, or an enhanced code X.7.Y)
    # passes; a refused greeting or EHLO, or a close, says nothing about TLS: not
    # tested, with the reason.
    assert got == {"banner": ("not-tested", "banner"), "ehlo": ("not-tested", "ehlo"),
                   "rcpt": ("refused", "rcpt"), "drop": ("not-tested", "mail"),
                   "nowhere": ("not-tested", "dns")}, a
    replies = {m["host"].split(".")[0]: m["reply"] for m in a["mx"]}
    assert replies["banner"] == "refused, but not for want of TLS: 554 5.3.2 no service"
    assert replies["drop"] == "connection closed by the MX at mail"
    # Every tested MX refused: the untested ones do not lower the assuredness, but they
    # are findings of the verdict.
    assert a["assuredness"] == 100 and r.returncode == 0, r.stderr
    res = doc["results"][0]
    assert res["verdict"] == "fail"
    assert sorted(f["subject"].split(".")[0] for f in res["findings"]
                  if f["id"] == "mx-unreachable") == ["banner", "drop", "ehlo", "nowhere"]
    assert_no_message(obs)


def test_text_output(ststest_bin, world_factory):
    w = world_factory(scenario_path("assure-tls-accepted"))
    r = run_sender(ststest_bin, "check", w, "--assure-tls", DOMAIN)
    w.stop()
    assert r.returncode == 1
    assert r.stdout == f"{DOMAIN}: assuredness 0\n"


def test_no_mx_at_all_is_assuredness_0(ststest_bin, world_factory):
    w = world_factory(scenario_path("assure-tls-refused"))
    r, doc = send_json(ststest_bin, w, "--assure-tls", command="check",
                       target="nx.example.test")
    w.stop()
    assert r.returncode == 1
    a = doc["results"][0]["assure_tls"]
    assert a == {"assuredness": 0, "detail": a["detail"], "mx": []}
    assert "NXDOMAIN" in a["detail"]


@pytest.mark.parametrize("args,needle", [
    (["--require-tls"], "not with --require-tls"),
    (["--mode", "enforce"], "not with --mode"),
])
def test_usage_errors(ststest_bin, world_factory, args, needle):
    w = world_factory(scenario_path("assure-tls-refused"))
    r = run_sender(ststest_bin, "check", w, "--assure-tls", *args, DOMAIN)
    obs = w.stop()
    assert r.returncode == 64 and needle in r.stderr
    assert obs["smtp_sessions"] == []


def test_send_has_no_assure_tls(ststest_bin, world_factory):
    w = world_factory(scenario_path("assure-tls-refused"))
    r = run_sender(ststest_bin, "send", w, "--assure-tls", "postmaster@example.test")
    obs = w.stop()
    assert r.returncode == 64 and "--assure-tls belongs to check" in r.stderr
    assert obs["smtp_sessions"] == []
