"""The sender's policy cache (RFC 8461 3.3, 5.1, 10.2) end to end: `ststest send --cache
FILE` against fake worlds that change between sends.

Each test writes its worlds' scenario files into tmp_path, runs a world, sends, stops the
world and reads what it observed (policy fetches, messages), then runs the next world
against the same cache file. --now moves the sender's clock (the `now` of every cache
call) without touching the worlds' certificates, which are valid for months around the
real time.
"""
import json
import subprocess
import time

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from conftest import RCPT, UdpServer, json_doc, run_sender
from conftest import scenario_file as write

DAY = 86400

VALID = """\
name: cache-valid
about: Policy id A, enforce, the only MX with a good certificate.
refs: [RFC 8461 3.3]
domain: example.test
dns: |
  @          MX   10 mail
  _mta-sts   TXT  "v=STSv1; id=A1;"
policy:
  mode: enforce
  mx: [mail.example.test]
  max_age: 86400
mx:
  mail.example.test: {}
expect:
  enforce: {outcome: delivered}
"""

# The TXT record now announces id B1 and the policy says testing.
NEW_ID = VALID.replace("id=A1;", "id=B1;").replace("mode: enforce", "mode: testing") \
    .replace("name: cache-valid", "name: cache-new-id")

# A downgrade: no TXT record any more and the MX without STARTTLS (a stripping attacker
# who controls DNS and the path looks exactly like this).
DOWNGRADE = """\
name: cache-downgrade
about: No _mta-sts TXT record and an MX without STARTTLS.
refs: [RFC 8461 10.2]
domain: example.test
dns: |
  @          MX   10 mail
mx:
  mail.example.test:
    starttls: false
expect:
  enforce: {outcome: deferred}
"""

# The domain withdraws its policy: new id, mode none (RFC 8461 8.3).
WITHDRAW = VALID.replace("id=A1;", "id=C1;").replace("mode: enforce", "mode: none") \
    .replace("name: cache-valid", "name: cache-withdraw")

# A new id whose policy cannot be fetched (404).
NEW_ID_404 = """\
name: cache-new-id-404
about: The TXT record announces id D1 but the policy host answers 404.
refs: [RFC 8461 3.3]
domain: example.test
dns: |
  @          MX   10 mail
  _mta-sts   TXT  "v=STSv1; id=D1;"
policy:
  mode: enforce
  mx: [mail.example.test]
  max_age: 86400
  status: 404
mx:
  mail.example.test: {}
expect:
  enforce: {outcome: delivered}
"""

# For the RFC 8461 5.1 re-check: the MX is now mx2, the new policy (id E2) allows it.
MOVED = """\
name: cache-moved
about: The MX moved to mx2; policy id E2 names it.
refs: [RFC 8461 5.1]
domain: example.test
dns: |
  @          MX   10 mx2
  _mta-sts   TXT  "v=STSv1; id=E2;"
policy:
  mode: enforce
  mx: [mx2.example.test]
  max_age: 86400
mx:
  mx2.example.test: {}
expect:
  enforce: {outcome: delivered}
"""


def send(binary, world, cache, now, *extra, dns=None):
    """`ststest send --cache CACHE --now NOW --json` at the world: (CompletedProcess, the
    one result)."""
    r = run_sender(binary, "send", world, "--now", str(now), "--json", *extra, RCPT,
                   cache=cache, dns=dns)
    [res] = json_doc(r)["results"]
    return r, res


def received(observed):
    return sum(len(s.get("messages", [])) for s in observed["smtp_sessions"])


def run_world(world_factory, scenario, binary, cache, now, *extra, dns=None):
    """Start a world, send once, stop it: (completed process, result, observed)."""
    w = world_factory(scenario)
    r, res = send(binary, w, cache, now, *extra, dns=dns)
    obs = w.stop()
    return r, res, obs


@pytest.fixture
def t0():
    return int(time.time())


def test_second_send_uses_the_cache(ststest_bin, world_factory, tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    w = world_factory(write(tmp_path, "valid", VALID))
    r1, res1 = send(ststest_bin, w, cache, t0)
    r2, res2 = send(ststest_bin, w, cache, t0 + 60)
    obs = w.stop()
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert res1["policy"]["source"] == "fetched"
    assert res1["cache"]["decision"] == "fetch"
    assert res1["cache"]["enabled"] is True
    assert res2["policy"]["source"] == "cache"
    assert res2["policy"]["id"] == "A1" and res2["policy"]["mode"] == "enforce"
    assert res2["policy"]["mx"] == ["mail.example.test"]
    assert res2["cache"]["decision"] == "use-cached"
    assert res2["cache"]["fetched_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0))
    assert res2["cache"]["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                        time.gmtime(t0 + DAY))
    # Only the first send fetched; both delivered over verified TLS.
    assert len(obs["policy_fetches"]) == 1
    assert received(obs) == 2
    assert res2["mx"][0]["tls"]["verified"] is True
    assert "MTASTS cache decision use-cached" in r2.stderr
    assert "MTASTS applying the CACHED policy id=A1" in r2.stderr
    assert cache.exists()


def test_new_txt_id_refetches(ststest_bin, world_factory, tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    r1, res1, obs1 = run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    r2, res2, obs2 = run_world(world_factory, write(tmp_path, "b", NEW_ID), ststest_bin, cache,
                               t0 + 60)
    assert res1["policy"]["source"] == "fetched"
    assert r2.returncode == 0, r2.stderr
    assert res2["cache"]["decision"] == "fetch-keep-cached-on-failure"
    assert res2["policy"]["source"] == "fetched"
    assert res2["policy"]["id"] == "B1"
    assert res2["policy"]["mode"] == "testing"
    assert len(obs2["policy_fetches"]) == 1
    # The new policy replaced the old one in the cache.
    r3, res3, obs3 = run_world(world_factory, write(tmp_path, "b", NEW_ID), ststest_bin, cache,
                               t0 + 120)
    assert res3["policy"]["source"] == "cache" and res3["policy"]["id"] == "B1"
    assert res3["policy"]["mode"] == "testing"
    assert obs3["policy_fetches"] == []


def test_downgrade_keeps_enforcing_the_cached_policy(ststest_bin, world_factory, tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    r, res, obs = run_world(world_factory, write(tmp_path, "down", DOWNGRADE), ststest_bin,
                            cache, t0 + 3600)
    # RFC 8461 10.2: the TXT record is gone, but the cached enforce policy is not expired.
    assert r.returncode == 75, r.stderr
    assert res["outcome"] == "deferred"
    assert res["cache"]["decision"] == "use-cached-dns-failed"
    assert res["policy"]["source"] == "cache"
    assert res["policy"]["mode"] == "enforce"
    assert res["failures"] == ["starttls-not-supported"]
    assert res["mx"][0]["action"] == "refused"
    assert received(obs) == 0
    verbs = [c["verb"] for s in obs["smtp_sessions"] for c in s["commands"]]
    assert not {"MAIL", "RCPT", "DATA"} & set(verbs), verbs
    assert obs["policy_fetches"] == []
    # RFC 8461 5.1: it looked at DNS again before giving up, and found nothing new.
    assert res["recheck"] == {"txt_id": None, "changed": False, "fetched": False,
                              "retried": False}
    assert "re-checking _mta-sts.example.test" in r.stderr
    txt = [q for q in obs["dns"] if q["name"] == "_mta-sts.example.test" and q["type"] == "TXT"]
    assert len(txt) >= 2, obs["dns"]


def test_expired_cache_is_not_used(ststest_bin, world_factory, tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    # max_age 86400 has passed: the cached policy is expired, so the downgrade world
    # gets opportunistic delivery (RFC 8461 3.2 / 5: no policy).
    r, res, obs = run_world(world_factory, write(tmp_path, "down", DOWNGRADE), ststest_bin,
                            cache, t0 + DAY + 1)
    assert r.returncode == 0, r.stderr
    assert res["cache"]["decision"] == "no-policy"
    assert res["policy"]["source"] == "none"
    assert res["outcome"] == "delivered"
    assert received(obs) == 1
    assert "EXPIRED" in r.stderr
    # One second before expiry it was still enforced.
    cache2 = tmp_path / "cache2.sqlite"
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache2, t0)
    r, res, obs = run_world(world_factory, write(tmp_path, "down", DOWNGRADE), ststest_bin,
                            cache2, t0 + DAY - 1)
    assert r.returncode == 75 and res["policy"]["source"] == "cache", r.stderr
    assert received(obs) == 0


def test_mode_none_replaces_cached_enforce(ststest_bin, world_factory, tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    r, res, obs = run_world(world_factory, write(tmp_path, "none", WITHDRAW), ststest_bin, cache,
                            t0 + 60)
    assert r.returncode == 0, r.stderr
    assert res["policy"]["source"] == "fetched" and res["policy"]["mode"] == "none"
    assert len(obs["policy_fetches"]) == 1
    # From now on the cached policy is the none one: the downgrade world is no longer
    # held to enforce.
    r, res, obs = run_world(world_factory, write(tmp_path, "down", DOWNGRADE), ststest_bin,
                            cache, t0 + 120)
    assert r.returncode == 0, r.stderr
    assert res["policy"]["source"] == "cache"
    assert res["policy"]["policy_mode"] == "none" and res["policy"]["mode"] == "none"
    assert res["outcome"] == "delivered"
    assert received(obs) == 1


def test_failed_fetch_is_not_retried_for_five_minutes(ststest_bin, world_factory, tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    scn = write(tmp_path, "d404", NEW_ID_404)
    # The new id's policy cannot be fetched: the cached one (id A1) still applies.
    r, res, obs = run_world(world_factory, scn, ststest_bin, cache, t0 + 60)
    assert r.returncode == 0, r.stderr
    assert res["cache"]["decision"] == "fetch-keep-cached-on-failure"
    assert res["policy"]["source"] == "cache" and res["policy"]["id"] == "A1"
    assert "sts-policy-fetch-error" in res["failures"]
    assert [f["status"] for f in obs["policy_fetches"]] == [404]
    # RFC 8461 3.3: four minutes later the failed id is not fetched again.
    r, res, obs = run_world(world_factory, scn, ststest_bin, cache, t0 + 60 + 240)
    assert r.returncode == 0, r.stderr
    assert res["cache"]["decision"] == "use-cached-recent-failure"
    assert res["policy"]["source"] == "cache"
    assert obs["policy_fetches"] == []
    # Five minutes after the failure it is.
    r, res, obs = run_world(world_factory, scn, ststest_bin, cache, t0 + 60 + 300)
    assert r.returncode == 0, r.stderr
    assert res["cache"]["decision"] == "fetch-keep-cached-on-failure"
    assert len(obs["policy_fetches"]) == 1


def test_failed_fetch_without_cached_policy_skips_then_refetches(ststest_bin, world_factory,
                                                                   tmp_path, t0):
    cache = tmp_path / "cache.sqlite"
    scn = write(tmp_path, "d404", NEW_ID_404)
    r, res, obs = run_world(world_factory, scn, ststest_bin, cache, t0)
    assert res["cache"]["decision"] == "fetch" and res["policy"]["source"] == "none"
    assert len(obs["policy_fetches"]) == 1
    r, res, obs = run_world(world_factory, scn, ststest_bin, cache, t0 + 299)
    assert res["cache"]["decision"] == "skip-fetch-recent-failure"
    assert res["policy"]["source"] == "none"
    assert obs["policy_fetches"] == []
    r, res, obs = run_world(world_factory, scn, ststest_bin, cache, t0 + 300)
    assert res["cache"]["decision"] == "fetch"
    assert len(obs["policy_fetches"]) == 1


def test_no_cache_always_fetches(ststest_bin, world_factory, tmp_path, t0):
    w = world_factory(write(tmp_path, "valid", VALID))
    for _ in range(2):
        r = run_sender(ststest_bin, "send", w, "--json", RCPT)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)["results"][0]
        assert res["policy"]["source"] == "fetched"
        assert res["cache"]["enabled"] is False
    obs = w.stop()
    assert len(obs["policy_fetches"]) == 2


def test_default_cache_under_xdg_cache_home(ststest_bin, world_factory, tmp_path):
    w = world_factory(write(tmp_path, "valid", VALID))
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "HOME": str(tmp_path / "home")}
    for source in ("fetched", "cache"):
        r = run_sender(ststest_bin, "send", w, "--json", RCPT, cache=True, env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["results"][0]["policy"]["source"] == source
    w.stop()
    assert (tmp_path / "xdg" / "ststest" / "policy-cache.sqlite").exists()


def test_unusable_default_cache_is_a_warning(ststest_bin, world_factory, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    w = world_factory(write(tmp_path, "valid", VALID))
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(blocker), "HOME": str(blocker)}
    r = run_sender(ststest_bin, "send", w, "--json", RCPT, cache=True, env=env)
    w.stop()
    assert r.returncode == 0, r.stderr
    assert "WARNING the default policy cache is unusable" in r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["policy"]["source"] == "fetched" and res["cache"]["enabled"] is False


@pytest.mark.parametrize("make_path", [
    lambda t: t / "no-such-dir" / "c.sqlite",
    lambda t: (t / "junk.sqlite").write_bytes(b"this is not an SQLite database" * 100) and
    t / "junk.sqlite",
])
def test_unusable_explicit_cache_is_an_input_error(ststest_bin, tmp_path, make_path):
    path = make_path(tmp_path)
    r = subprocess.run([ststest_bin, "send", "--dns", "127.0.0.1:9", "--cache", str(path), RCPT],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 65, r.stderr
    assert str(path) in r.stderr
    assert r.stdout == ""


# ---- RFC 8461 5.1: a DNS re-check before giving up under a cached enforce policy ----

class TxtPinningProxy(UdpServer):
    """A UDP DNS proxy in front of a world's DNS server: the first `pin` TXT queries for
    _mta-sts.example.test get a fixed answer (as if a resolver still had the old record
    cached); everything else is forwarded."""

    def __init__(self, upstream, txt, pin):
        self.txt, self.pin, self.txt_queries = txt, pin, 0
        super().__init__(upstream)

    def reply(self, data):
        q = dns.message.from_wire(data)
        qn = q.question[0]
        if (qn.rdtype == dns.rdatatype.TXT and
                qn.name.to_text().lower() == "_mta-sts.example.test."):
            self.txt_queries += 1
            if self.txt_queries <= self.pin:
                resp = dns.message.make_response(q)
                resp.answer.append(dns.rrset.from_text(qn.name, 60, dns.rdataclass.IN,
                                                       dns.rdatatype.TXT, f'"{self.txt}"'))
                return resp.to_wire()
        return self.forward(data)


@pytest.mark.parametrize("pin,delivered", [(1, True), (99, False)])
def test_recheck_dns_when_every_mx_is_refused(ststest_bin, world_factory, tmp_path, t0, pin,
                                              delivered):
    cache = tmp_path / "cache.sqlite"
    # The cache learns policy A1 (mx: mail.example.test, enforce).
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    # The domain moved its MX to mx2 and published policy E2, but the first TXT answer
    # the sender gets still says A1 (pin 1), or every one does (pin 99).
    w = world_factory(write(tmp_path, "moved", MOVED))
    proxy = TxtPinningProxy(w.dns, "v=STSv1; id=A1;", pin)
    try:
        r, res = send(ststest_bin, w, cache, t0 + 60, dns=proxy.addr)
    finally:
        proxy.close()
    obs = w.stop()
    err = r.stderr
    assert "re-checking _mta-sts.example.test for an updated policy (RFC 8461 5.1)" in err, err
    assert proxy.txt_queries == 2
    if delivered:
        assert r.returncode == 0, err
        assert res["outcome"] == "delivered"
        assert res["recheck"] == {"txt_id": "E2", "changed": True, "fetched": True,
                                  "retried": True}
        assert res["policy"]["source"] == "fetched" and res["policy"]["id"] == "E2"
        assert "TXT id changed A1 -> E2" in err
        assert "retrying the MX list under it" in err
        assert len(obs["policy_fetches"]) == 1
        assert received(obs) == 1
        assert [m["action"] for m in res["mx"]] == ["delivered"]
    else:
        assert r.returncode == 75, err
        assert res["outcome"] == "deferred"
        assert res["recheck"]["changed"] is False and res["recheck"]["retried"] is False
        assert res["policy"]["source"] == "cache" and res["policy"]["id"] == "A1"
        assert "TXT id unchanged" in err
        assert obs["policy_fetches"] == []
        assert received(obs) == 0
        assert obs["smtp_sessions"] == []  # mx2 is not in policy A1: never contacted


@pytest.mark.parametrize("pin,delivered", [(1, True), (99, False)])
def test_recheck_is_shared_by_the_recipients_of_a_domain(ststest_bin, world_factory, tmp_path,
                                                         t0, pin, delivered):
    """Single flight (issue 15): five recipients of the domain, two at a time, all
    refused under the cached policy A1: one discovery and one re-check for all (two TXT
    queries in the run), and at most one fetch."""
    cache = tmp_path / "cache.sqlite"
    run_world(world_factory, write(tmp_path, "a", VALID), ststest_bin, cache, t0)
    w = world_factory(write(tmp_path, "moved", MOVED))
    proxy = TxtPinningProxy(w.dns, "v=STSv1; id=A1;", pin)
    rcpts = [f"u{i}@example.test" for i in range(5)]
    try:
        r = run_sender(ststest_bin, "send", w, "--now", str(t0 + 60), "--json",
                       "--concurrency", "2", *rcpts, cache=cache, dns=proxy.addr)
    finally:
        proxy.close()
    obs = w.stop()
    results = json_doc(r)["results"]
    assert [x["recipient"] for x in results] == rcpts
    assert proxy.txt_queries == 2, r.stderr
    if delivered:
        assert r.returncode == 0, r.stderr
        assert all(x["outcome"] == "delivered" and x["policy"]["id"] == "E2" for x in results)
        assert len(obs["policy_fetches"]) == 1
        assert received(obs) == 5
    else:
        assert r.returncode == 75, r.stderr
        for x in results:
            assert x["outcome"] == "deferred" and x["policy"]["id"] == "A1", x
            assert x["recheck"]["changed"] is False
        assert obs["policy_fetches"] == []
        assert obs["smtp_sessions"] == []
