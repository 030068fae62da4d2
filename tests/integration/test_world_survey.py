"""A survey world (`ststest world --domains N SCENARIO`): the scenario served for N
domains d1.example.test ... dN.example.test, each with its own policy host and MX
under it, one CA. `check` and `send` across all of them judge and deliver, and the
world observes exactly one policy fetch, TXT lookup and SMTP session per domain and
run, at the right host; the ready line lists d1's hosts and the stride."""
import collections
import ipaddress
import subprocess

import dns.message
import dns.query
import dns.rdatatype

from conftest import json_doc, run_sender, scenario_file, scenario_path

N = 50


def addr_plus(addr, k):
    return str(ipaddress.ip_address(addr) + k)


def query(world, name, rdtype):
    host, port = world.dns_host_port()
    q = dns.message.make_query(name, rdtype)
    return dns.query.udp(q, host, port=port, timeout=5)


def test_ready_line_and_names(world_factory):
    w = world_factory(scenario_path("valid-enforce"), "--domains", str(N))
    r = w.ready
    assert r["domains"] == {"count": N, "first": "d1.example.test",
                            "last": f"d{N}.example.test", "stride": 2}
    assert set(r["hosts"]) == {"mail.d1.example.test", "mta-sts.d1.example.test"}
    mail1 = r["hosts"]["mail.d1.example.test"]
    for k in (1, 2, N):
        a = query(w, f"mail.d{k}.example.test", "A")
        assert [rr.to_text() for rrset in a.answer for rr in rrset] == [
            addr_plus(mail1, 2 * (k - 1))]
        mx = query(w, f"d{k}.example.test", "MX")
        assert [rr.to_text() for rrset in mx.answer for rr in rrset] == [
            f"10 mail.d{k}.example.test."]
    # The scenario's own domain is only the zone's apex now: no MX of its own.
    assert not query(w, "example.test", "MX").answer
    assert query(w, f"mail.d{N + 1}.example.test", "A").rcode() == dns.rcode.NXDOMAIN


def per_domain(items, key):
    return collections.Counter(key(i) for i in items)


def test_check_and_send_across_domains(ststest_bin, world_factory):
    w = world_factory(scenario_path("valid-enforce"), "--domains", str(N))
    domains = [f"d{k}.example.test" for k in range(1, N + 1)]
    r = run_sender(ststest_bin, "check", w, "--json", "--concurrency", "16", *domains)
    # The scenario publishes no _smtp._tls record: every domain is otherwise sound, so
    # each is a warn with that one finding (exit 1).
    assert r.returncode == 1, r.stderr[-2000:]
    doc = json_doc(r)
    assert [x["argument"] for x in doc["results"]] == domains
    for k, x in enumerate(doc["results"], 1):
        assert x["verdict"] == "warn", x["findings"]
        assert [(f["id"], f["subject"]) for f in x["findings"]] == [
            ("tlsrpt-missing", f"_smtp._tls.d{k}.example.test")]
        assert x["policy"]["mx"] == [f"mail.d{k}.example.test"], x
        assert x["policy"]["source"] == "fetched"
        (mx,) = x["mx"]
        assert mx["host"] == f"mail.d{k}.example.test" and mx["tls"]["verified"], mx
        assert mx["tls"]["peer_names"][0] == f"DNS:mail.d{k}.example.test"

    rcpts = [f"u{k}@d{k}.example.test" for k in range(1, N + 1)]
    r = run_sender(ststest_bin, "send", w, "--json", "--concurrency", "16", *rcpts)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json_doc(r)
    assert [x["outcome"] for x in doc["results"]] == ["delivered"] * N

    obs = w.stop()
    # Per domain and run: one fetch at its own policy host, one TXT lookup, one session
    # at its own MX; the send's session carried the one message to its recipient.
    assert per_domain(obs["policy_fetches"], lambda f: f["host"]) == {
        f"mta-sts.{d}": 2 for d in domains}
    assert all(f["status"] == 200 and f["complete"] for f in obs["policy_fetches"])
    txt = [q for q in obs["dns"] if q["type"] == "TXT"]
    # _mta-sts by check and by send; _smtp._tls by check alone.
    assert per_domain(txt, lambda q: q["name"]) == {
        **{f"_mta-sts.{d}": 2 for d in domains}, **{f"_smtp._tls.{d}": 1 for d in domains}}
    sessions = obs["smtp_sessions"]
    assert per_domain(sessions, lambda s: s["host"]) == {f"mail.{d}": 2 for d in domains}
    delivered = sorted(rc for s in sessions for m in s["messages"] for rc in m["rcpts"])
    assert delivered == sorted(rcpts)
    for s in sessions:
        for m in s["messages"]:
            assert m["tls"] and m["rcpts"][0].endswith("@" + s["host"][len("mail."):])


def test_shared_host_and_names_in_text(ststest_bin, world_factory, tmp_path):
    """An MX host outside the domain is shared (one listener, listed first); absolute
    names, the policy's mx patterns and the certificates' names move under each
    domain."""
    text = """\
name: survey-shape
about: absolute names, a wildcard mx pattern and a shared host outside the domain
refs: [RFC 8461 4.1]
domain: example.test
dns: |
  @ MX 10 mx1.example.test.
  @ MX 20 relay.other.test.
  _mta-sts TXT "v=STSv1; id=1;"
policy:
  mode: enforce
  mx: ['*.example.test']
mx:
  mx1.example.test:
    cert: {names: [mx1.example.test, alt.example.test]}
  relay.other.test: {}
expect:
  enforce: {outcome: delivered}
"""
    w = world_factory(scenario_file(tmp_path, "survey", text), "--domains", "3")
    r = w.ready
    assert r["domains"]["stride"] == 2
    assert list(r["hosts"]) == ["relay.other.test", "mx1.d1.example.test",
                                "mta-sts.d1.example.test"]
    mx = query(w, "d3.example.test", "MX")
    assert sorted(rr.to_text() for rrset in mx.answer for rr in rrset) == [
        "10 mx1.d3.example.test.", "20 relay.other.test."]
    res = run_sender(ststest_bin, "check", w, "--json", "d3.example.test")
    doc = json_doc(res)
    (x,) = doc["results"]
    assert x["policy"]["mx"] == ["*.d3.example.test"]
    assert x["mx"][0]["tls"]["peer_names"][:2] == ["DNS:mx1.d3.example.test",
                                                  "DNS:alt.d3.example.test"]
    # The shared relay is outside the policy's *.d3.example.test: check fails the domain
    # for it (exit 2), which shows the pattern moved under d3.
    assert res.returncode == 2, res.stderr[-2000:]
    assert ("mx-not-in-policy", "relay.other.test") in [
        (f["id"], f["subject"]) for f in x["findings"]], x["findings"]


def test_usage(ststest_bin):
    for bad in ("0", "1001", "x", "-3"):
        r = subprocess.run([ststest_bin, "world", "--domains", bad,
                            str(scenario_path("valid-enforce"))],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 64 and "--domains" in r.stderr, (bad, r.stderr)


def test_too_many_domains(ststest_bin):
    r = subprocess.run([ststest_bin, "world", "--domains", "200",
                        str(scenario_path("valid-enforce"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "2 per domain and 0 shared allow at most 120 domains" in r.stderr, r.stderr
