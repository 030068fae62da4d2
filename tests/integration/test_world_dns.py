"""The DNS fault knobs of `ststest world` (dns_faults: servfail, refused, nxdomain,
timeout, truncate, delay, wrong_id, wrong_source; type matching) and long TXT strings, checked with
dnspython, raw sockets and dig as independent clients."""
import socket
import struct
import subprocess
import textwrap
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import need, scenario_file, world_ports

SCENARIO = textwrap.dedent("""\
    name: world-dns-faults
    about: Every DNS fault on a name of its own.
    refs: [RFC 1035, RFC 7766]
    domain: example.test
    dns: |
      @        MX  10 mail
      _mta-sts TXT "v=STSv1; id=1;"
      typed    TXT "typed"
      typed    A   192.0.2.1
      nx       TXT "exists"
      tc       TXT "truncated over udp"
      slow     TXT "slow"
      spoof    TXT "v=STSv1; id=right;"
      forged   TXT "v=STSv1; id=right;"
      gone     TXT "gone"
      split    TXT "%s" "%s"
    dns_faults:
      - {name: _mta-sts, type: TXT, fault: servfail}
      - {name: typed, type: TXT, fault: refused}
      - {name: nx, fault: nxdomain}
      - {name: gone, type: ANY, fault: timeout}
      - {name: tc, type: TXT, fault: truncate}
      - {name: slow, type: TXT, fault: delay, delay: 1}
      - {name: spoof.example.test., type: TXT, fault: wrong_id}
      - {name: forged, type: TXT, fault: wrong_source}
    expect:
      enforce: {outcome: deferred}
    """) % ("a" * 255, "b" * 45)


@pytest.fixture(scope="module")
def world(module_world_factory):
    return module_world_factory(SCENARIO, *world_ports(13000))


def q(world, name, rdtype, tcp=False, timeout=3):
    host, port = world.dns_host_port()
    m = dns.message.make_query(name + ".example.test", rdtype)
    if tcp:
        return dns.query.tcp(m, host, port=port, timeout=timeout)
    return dns.query.udp(m, host, port=port, timeout=timeout)


def test_rcodes(world):
    for tcp in (False, True):
        assert q(world, "_mta-sts", "TXT", tcp).rcode() == dns.rcode.SERVFAIL
        assert q(world, "typed", "TXT", tcp).rcode() == dns.rcode.REFUSED
        nx = q(world, "nx", "TXT", tcp)
        assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA
    # The fault is for TXT only: A at the same name is answered.
    a = q(world, "typed", "A")
    assert a.rcode() == dns.rcode.NOERROR and a.answer[0][0].address == "192.0.2.1"
    # The apex is untouched.
    assert q(world, "mail", "A").rcode() == dns.rcode.NOERROR


def test_timeout(world):
    with pytest.raises(dns.exception.Timeout):
        q(world, "gone", "TXT", timeout=1)
    with pytest.raises(dns.exception.Timeout):
        q(world, "gone", "A", tcp=True, timeout=1)


def test_truncate(world):
    r = q(world, "tc", "TXT")
    assert r.flags & dns.flags.TC and not r.answer
    host, port = world.dns_host_port()
    m = dns.message.make_query("tc.example.test", "TXT")
    r, used_tcp = dns.query.udp_with_fallback(m, host, port=port, timeout=3)
    assert used_tcp and r.answer[0][0].strings == (b"truncated over udp",)
    out = subprocess.run([need("dig"), f"@{host}", "-p", str(port), "tc.example.test", "TXT"],
                         capture_output=True, text=True, timeout=20).stdout
    assert "Truncated, retrying in TCP mode" in out
    assert '"truncated over udp"' in out


def test_delay(world):
    t0 = time.monotonic()
    r = q(world, "slow", "TXT")
    assert time.monotonic() - t0 >= 0.9
    assert r.answer[0][0].strings == (b"slow",)
    t0 = time.monotonic()
    q(world, "slow", "TXT", tcp=True)
    assert time.monotonic() - t0 >= 0.9


def test_wrong_id_udp(world):
    host, port = world.dns_host_port()
    m = dns.message.make_query("spoof.example.test", "TXT")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(m.to_wire(), (host, port))
    first = dns.message.from_wire(s.recv(4096))
    second = dns.message.from_wire(s.recv(4096))
    s.close()
    assert first.id != m.id
    assert first.answer[0][0].strings == (b"v=STSv1; id=spoofed;",)
    assert second.id == m.id
    assert second.answer[0][0].strings == (b"v=STSv1; id=right;",)
    # dig notices the mismatch, ignores the first and prints the right one.
    out = subprocess.run([need("dig"), f"@{host}", "-p", str(port), "spoof.example.test", "TXT"],
                         capture_output=True, text=True, timeout=20).stdout
    assert "ID mismatch" in out
    assert "id=right" in out and "id=spoofed" not in out


def test_wrong_id_tcp(world):
    host, port = world.dns_host_port()
    m = dns.message.make_query("spoof.example.test", "TXT")
    wire = m.to_wire()
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(struct.pack("!H", len(wire)) + wire)
        f = s.makefile("rb")
        msgs = []
        for _ in range(2):
            (n,) = struct.unpack("!H", f.read(2))
            msgs.append(dns.message.from_wire(f.read(n)))
    assert msgs[0].id != m.id and msgs[1].id == m.id


def test_wrong_source_udp(world):
    """Two forgeries with the right ID and the attacker's data: one from the server's
    address on another port, one from another address on the server's port; then
    the right answer from the server's address and port."""
    host, port = world.dns_host_port()
    m = dns.message.make_query("forged.example.test", "TXT")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(m.to_wire(), (host, port))
    got = []
    for _ in range(3):
        data, src = s.recvfrom(4096)
        got.append((src, dns.message.from_wire(data)))
    s.close()
    assert got[2][0] == (host, port)
    forgers = dict(src for src, _ in got[:2])  # address -> port
    other = host.rsplit(".", 1)[0] + ".254"
    assert set(forgers) == {host, other}
    assert forgers[host] != port and forgers[other] == port
    for src, msg in got:
        assert msg.id == m.id
    assert [msg.answer[0][0].strings for _, msg in got] == [
        (b"v=STSv1; id=spoofed;",), (b"v=STSv1; id=spoofed;",), (b"v=STSv1; id=right;",)]


def test_wrong_source_independent_clients(world):
    """dnspython refuses an answer from an unexpected source (or skips it when told
    to); dig, whose socket is connected, never sees the forgeries."""
    host, port = world.dns_host_port()
    m = dns.message.make_query("forged.example.test", "TXT")
    with pytest.raises(dns.query.UnexpectedSource):
        dns.query.udp(m, host, port=port, timeout=3)
    r = dns.query.udp(m, host, port=port, timeout=3, ignore_unexpected=True)
    assert r.answer[0][0].strings == (b"v=STSv1; id=right;",)
    out = subprocess.run([need("dig"), f"@{host}", "-p", str(port), "forged.example.test", "TXT"],
                         capture_output=True, text=True, timeout=20).stdout
    assert "id=right" in out and "id=spoofed" not in out


def test_wrong_source_tcp_is_plain(world):
    """Over TCP the stream has one source: only the right answer comes."""
    r = q(world, "forged", "TXT", tcp=True)
    assert r.answer[0][0].strings == (b"v=STSv1; id=right;",)


def test_back_to_back_queries_all_answered_in_order(world):
    """Queries sent back to back are read in batches (recvmmsg) and answered in batches
    (sendmmsg): every one is answered, and each wrong_id forgery still comes before
    its right answer."""
    host, port = world.dns_host_port()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(3)
    names = ["spoof", "typed", "nx", "split"] * 10
    queries = [dns.message.make_query(n + ".example.test", "TXT") for n in names]
    for i, m in enumerate(queries):
        m.id = 1 + i  # no forged ID (id ^ 0x5A5A) can equal a real one
    for m in queries:
        s.sendto(m.to_wire(), (host, port))
    want = {m.id: n for m, n in zip(queries, names)}
    spoofed_ids = {m.id ^ 0x5A5A: m.id for m, n in zip(queries, names) if n == "spoof"}
    seen, order = {}, []
    while len(seen) < len(queries):
        r = dns.message.from_wire(s.recv(65535))
        order.append(r.id)
        if r.id in want:
            seen[r.id] = r
    s.close()
    for qid, n in want.items():
        r = seen[qid]
        if n == "typed":
            assert r.rcode() == dns.rcode.REFUSED
        elif n == "nx":
            assert r.rcode() == dns.rcode.NXDOMAIN
        else:
            assert r.rcode() == dns.rcode.NOERROR and r.answer
    for fake, real in spoofed_ids.items():
        assert order.index(fake) < order.index(real)


def test_long_txt_split(world):
    r = q(world, "split", "TXT", tcp=True)
    assert r.answer[0][0].strings == (b"a" * 255, b"b" * 45)


def test_observed_faults(world):
    q(world, "_mta-sts", "TXT")
    obs = world.stop()
    faults = {(d["name"], d["type"], d["transport"]): (d["rcode"], d.get("fault"))
              for d in obs["dns"]}
    assert faults[("_mta-sts.example.test", "TXT", "udp")] == ("SERVFAIL", "servfail")
    assert faults[("gone.example.test", "TXT", "udp")] == ("none", "timeout")
    assert faults[("typed.example.test", "A", "udp")] == ("NOERROR", None)
    assert faults[("forged.example.test", "TXT", "udp")] == ("NOERROR", "wrong_source")


def test_long_txt_string_is_an_error(ststest_bin, tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(textwrap.dedent("""\
        name: long
        about: A TXT string over 255 octets.
        refs: [RFC 1035 3.3.14]
        domain: example.test
        dns: |
          @ MX 10 mail
          _mta-sts TXT "%s"
        expect:
          enforce: {outcome: deferred}
        """) % ("x" * 300))
    res = subprocess.run([ststest_bin, "world", str(path)], capture_output=True, text=True,
                         timeout=20)
    assert res.returncode == 65
    assert f"{path}:7: a quoted string of 300 octets" in res.stderr
    assert "split it into several quoted strings" in res.stderr


def test_bad_fault_type(ststest_bin, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: b\nabout: b\nrefs: [x]\ndomain: example.test\n"
                    "dns_faults:\n  - {name: x, type: NOPE, fault: servfail}\n"
                    "expect: {enforce: {}}\n")
    res = subprocess.run([ststest_bin, "world", str(path)], capture_output=True, text=True,
                         timeout=20)
    assert res.returncode == 65
    assert f"{path}:6: 'NOPE' is not a record type" in res.stderr


def test_observe_max_bounds_the_query_log(world_factory, tmp_path):
    """--observe-max N keeps the first N queries and counts the rest as dns_dropped."""
    path = scenario_file(tmp_path, "bound", textwrap.dedent("""\
        name: world-observe-max
        about: A bounded observer log.
        refs: [DESIGN.md world]
        domain: example.test
        dns: |
          @ MX 10 mail
        expect:
          enforce: {outcome: deferred}
        """))
    w = world_factory(path, "--observe-max", "2")
    host, port = w.dns_host_port()
    for name in ("a", "b", "c", "d", "e"):
        m = dns.message.make_query(f"{name}.example.test", "A")
        r = dns.query.udp(m, host, port=port, timeout=3)
        assert r.rcode() == dns.rcode.NXDOMAIN
    obs = w.stop()
    assert [d["name"] for d in obs["dns"]] == ["a.example.test", "b.example.test"]
    assert obs["dns_dropped"] == 3
    assert "dropping" in w.stderr or "dropped" in w.stderr
