"""Multi-step scenarios in `ststest world`: SIGUSR1 applies the next step (zone, DNS
faults, policy, MX scripts) without restarting listeners; a session in flight
finishes on the old configuration. Checked with dnspython, curl and raw SMTP."""
import json
import signal
import socket
import textwrap

import dns.message
import dns.query
import dns.rcode

from conftest import curl_policy, next_step, scenario_file

SCENARIO = textwrap.dedent("""\
    name: world-steps
    about: The world changes between deliveries.
    refs: [RFC 8461 3.3, RFC 8461 5.1]
    domain: example.test
    dns: |
      @        MX  10 mail
      _mta-sts TXT "v=STSv1; id=one;"
    policy:
      mode: enforce
      mx: [mail.example.test]
      max_age: 86400
    steps:
      - name: first
        expect: {enforce: {outcome: delivered}}
      - name: id-change
        advance: 1d
        dns: |
          @        MX  10 mail
          @        MX  20 backup
          _mta-sts TXT "v=STSv1; id=two;"
        policy: {mode: testing, mx: [mail.example.test, backup.example.test], max_age: 600}
        mx:
          mail.example.test: {starttls_reply: "454 4.7.0 TLS not available"}
        expect: {enforce: {outcome: delivered}}
      - name: gone
        advance: 90s
        policy: {absent: true}
        dns_faults:
          - {name: _mta-sts, type: TXT, fault: servfail}
        expect: {enforce: {outcome: delivered}}
    """)


def txt(world):
    host, port = world.dns_host_port()
    r = dns.query.udp(dns.message.make_query("_mta-sts.example.test", "TXT"), host, port=port,
                      timeout=3)
    return r.rcode(), [b"".join(rr.strings) for a in r.answer for rr in a]


def fetch(world):
    res = curl_policy(world, "-w", "\n%{http_code}", text=True, timeout=20)
    body, _, code = res.stdout.rpartition("\n")
    return int(code), body


def smtp_starttls(world, sock=None):
    """EHLO then STARTTLS on a new (or given, already greeted) connection: the code."""
    r = world.ready
    s = sock or socket.create_connection((r["hosts"]["mail.example.test"], r["smtp_port"]), 5)
    f = s.makefile("rb")
    if not sock:
        f.readline()
    s.sendall(b"EHLO c.test\r\n")
    while f.readline()[3:4] == b"-":
        pass
    s.sendall(b"STARTTLS\r\n")
    code = int(f.readline()[:3])
    s.close()
    return code


def test_steps(world_factory, tmp_path):
    w = world_factory(scenario_file(tmp_path, "steps", SCENARIO))
    first = json.loads(w.proc.stdout.readline())
    assert (first["event"], first["step"], first["name"]) == ("step", 1, "first")
    # backup.example.test appears only in step 2's zone, yet has a listener from the start.
    assert "backup.example.test" in w.ready["hosts"]

    assert txt(w) == (dns.rcode.NOERROR, [b"v=STSv1; id=one;"])
    code, body = fetch(w)
    assert code == 200 and "mode: enforce" in body
    held = socket.create_connection((w.ready["hosts"]["mail.example.test"],
                                     w.ready["smtp_port"]), 5)
    assert held.recv(512).startswith(b"220 ")

    ev = next_step(w)
    assert (ev["step"], ev["name"], ev["now"] - first["now"]) == (2, "id-change", 86400)
    assert txt(w) == (dns.rcode.NOERROR, [b"v=STSv1; id=two;"])
    code, body = fetch(w)
    assert code == 200 and "mode: testing" in body and "mx: backup.example.test" in body
    assert smtp_starttls(w) == 454                # new sessions: the new script
    assert smtp_starttls(w, held) == 220          # the session in flight: the old one

    ev = next_step(w)
    assert (ev["step"], ev["now"] - first["now"]) == (3, 86400 + 90)
    assert txt(w)[0] == dns.rcode.SERVFAIL
    assert fetch(w)[0] == 404
    assert smtp_starttls(w) == 454                # MX unchanged since step 2

    # No step after the last: the world says so on stderr and keeps serving.
    w.proc.send_signal(signal.SIGUSR1)
    code = fetch(w)[0]
    assert code == 404, (w.proc.poll(), w.proc.stderr.read() if w.proc.poll() is not None else "")
    obs = w.stop()
    assert [f["status"] for f in obs["policy_fetches"]] == [200, 200, 404, 404]
    assert "no step after step 3" in w.stderr
