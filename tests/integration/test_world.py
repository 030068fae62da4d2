"""`ststest world`: the fake world served to independent peers (dnspython, dig, curl,
openssl s_client, swaks, a raw SMTP client), and the observer log it prints on stop."""
import hashlib
import os
import socket
import ssl
import subprocess
import textwrap

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import curl_policy, need, scenario_file, scenario_path

DOMAIN = "example.test"


def query(world, name, rdtype, tcp=False, **kw):
    host, port = world.dns_host_port()
    q = dns.message.make_query(name, rdtype, **kw)
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=5)
    return dns.query.udp(q, host, port=port, timeout=5, ignore_trailing=False)


@pytest.fixture
def valid_world(world_factory):
    return world_factory(scenario_path("valid-enforce"))


def write_scenario(tmp_path, dns_lines, extra=""):
    body = textwrap.dedent(
        """\
        name: world-dns
        about: DNS shapes for the world's own tests.
        refs: [RFC 1035]
        domain: example.test
        dns: |
        """
    )
    body += textwrap.indent(dns_lines, "  ")
    body += extra
    body += "expect:\n  enforce: {outcome: delivered}\n"
    return scenario_file(tmp_path, "scn", body)


def smtp_lines(sock_file):
    """Read one SMTP reply (all its lines); returns (code, [lines])."""
    lines = []
    while True:
        line = sock_file.readline().decode()
        assert line, "server closed"
        lines.append(line.rstrip("\r\n"))
        if line[3:4] == " ":
            return int(line[:3]), lines


def test_ready_line(valid_world):
    r = valid_world.ready
    assert r["domain"] == DOMAIN
    host, port = valid_world.dns_host_port()
    assert host.startswith("127.") and host.endswith(".53") and port == 10053
    block = host.rsplit(".", 1)[0]
    assert r["hosts"] == {"mail.example.test": block + ".10", "mta-sts.example.test": block + ".11"}
    assert (r["smtp_port"], r["https_port"], r["http_port"]) == (10025, 10443, 10080)
    with open(r["ca_file"]) as f:
        assert "BEGIN CERTIFICATE" in f.read()
    obs = valid_world.stop()
    assert obs == {"event": "observed", "dns": [], "policy_fetches": [], "policy_connections": [],
                   "smtp_sessions": [], "tlsrpt_reports": [], "dns_drops": 0, "dns_drops_kernel": 0,
                   "dns_drops_server": 0, "dns_drops_measured": "proc_net_udp",
                   "dns_rcvbuf": obs["dns_rcvbuf"]}
    assert obs["dns_rcvbuf"] > 0
    assert not os.path.exists(r["ca_file"])  # its temporary directory is removed


def test_end_to_end(valid_world, tmp_path):
    w = valid_world
    r = w.ready
    ca = r["ca_file"]
    mail = r["hosts"]["mail.example.test"]
    policy_addr = r["hosts"]["mta-sts.example.test"]

    # DNS over UDP and TCP.
    mx = query(w, DOMAIN, "MX")
    assert mx.rcode() == dns.rcode.NOERROR and mx.flags & dns.flags.AA
    assert [str(rr.exchange) for rr in mx.answer[0]] == ["mail.example.test."]
    txt = query(w, "_mta-sts." + DOMAIN, "TXT", tcp=True)
    assert b"".join(txt.answer[0][0].strings) == b"v=STSv1; id=20240101T000000;"
    a = query(w, "mail." + DOMAIN, "A")
    assert [rr.address for rr in a.answer[0]] == [mail]
    nx = query(w, "nope." + DOMAIN, "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert nx.authority and nx.authority[0].rdtype == dns.rdatatype.SOA
    nodata = query(w, "mail." + DOMAIN, "AAAA", tcp=True)
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA
    refused = query(w, "example.org", "A")
    assert refused.rcode() == dns.rcode.REFUSED

    # dig, an independent DNS client.
    dig = need("dig")
    host, port = w.dns_host_port()
    out = subprocess.run([dig, "+short", "+tcp", f"@{host}", "-p", str(port), "mta-sts." + DOMAIN, "A"],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    assert out.split() == [policy_addr]

    # The policy over HTTPS with the world's CA, and over plain HTTP.
    res = curl_policy(w, "-o", str(tmp_path / "body"), "-w", "%{http_code} %{content_type}",
                      text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "200 text/plain"
    assert (tmp_path / "body").read_bytes() == (
        b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 86400\r\n")
    res = subprocess.run([need("curl"), "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          f"http://{policy_addr}:{r['http_port']}/other"],
                         capture_output=True, text=True, timeout=20)
    assert res.stdout == "404", res.stderr

    # The MX certificate verifies for its name against the world's CA.
    openssl = need("openssl")
    res = subprocess.run([openssl, "s_client", "-starttls", "smtp", "-connect", f"{mail}:{r['smtp_port']}",
                          "-servername", "mail.example.test", "-verify_hostname", "mail.example.test",
                          "-CAfile", ca, "-verify_return_error"],
                         input="QUIT\n", capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Verify return code: 0 (ok)" in res.stdout

    # swaks delivers a message over TLS; a leading dot checks dot-unstuffing.
    swaks = need("swaks")
    content = "Subject: world test\r\n\r\n.leading dot\r\nbody\r\n"
    (tmp_path / "msg").write_text(content)
    res = subprocess.run([swaks, "--server", mail, "--port", str(r["smtp_port"]), "--tls",
                          "--tls-verify", "--tls-ca-path", ca, "--tls-sni", "mail.example.test",
                          "--from", "sender@sender.test", "--to", "postmaster@example.test",
                          "--data", str(tmp_path / "msg")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr

    obs = w.stop()
    seen = {(q["name"], q["type"], q["transport"], q["rcode"]) for q in obs["dns"]}
    assert ("example.test", "MX", "udp", "NOERROR") in seen
    assert ("_mta-sts.example.test", "TXT", "tcp", "NOERROR") in seen
    assert ("nope.example.test", "A", "udp", "NXDOMAIN") in seen
    assert ("mta-sts.example.test", "A", "tcp", "NOERROR") in seen
    assert ("example.org", "A", "udp", "REFUSED") in seen

    fetches = obs["policy_fetches"]
    https = [f for f in fetches if f["scheme"] == "https"]
    assert len(https) == 1
    assert https[0]["sni"] == "mta-sts.example.test"
    assert https[0]["host"] == "mta-sts.example.test"
    assert https[0]["path"] == "/.well-known/mta-sts.txt" and https[0]["status"] == 200
    plain = [f for f in fetches if f["scheme"] == "http"]
    assert len(plain) == 1 and plain[0]["status"] == 404 and plain[0]["sni"] is None

    sessions = obs["smtp_sessions"]
    assert len(sessions) == 2  # s_client, then swaks
    for s in sessions:
        assert s["host"] == "mail.example.test" and s["address"] == mail
        assert s["sni"] == "mail.example.test"
        assert s["tls"]["version"].startswith("TLSv1.")
    s = sessions[1]
    verbs = [(c["verb"], c["tls"]) for c in s["commands"]]
    i = verbs.index(("STARTTLS", False))
    assert all(not t for _, t in verbs[:i + 1])
    assert all(t for _, t in verbs[i + 1:])
    assert [v for v, _ in verbs[i + 1:]] == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert len(s["messages"]) == 1
    m = s["messages"][0]
    # swaks sends "..leading dot" (dot-stuffed) and puts CRLF "." CRLF after the
    # file, which already ends in CRLF: the world unstuffs, so it holds the file
    # plus one empty line.
    want = content.encode() + b"\r\n"
    assert m["tls"] is True
    assert m["from"] == "sender@sender.test" and m["rcpts"] == ["postmaster@example.test"]
    assert m["bytes"] == len(want)
    assert m["sha256"] == hashlib.sha256(want).hexdigest()


def test_smtp_state_machine(valid_world):
    """Raw client: sequence errors, bytes pipelined after STARTTLS are discarded, EHLO
    needed again after TLS, a message over TLS."""
    r = valid_world.ready
    mail = r["hosts"]["mail.example.test"]
    with socket.create_connection((mail, r["smtp_port"]), timeout=10) as sock:
        f = sock.makefile("rb")
        code, lines = smtp_lines(f)
        assert code == 220 and lines[0] == "220 mail.example.test ESMTP ststest"
        sock.sendall(b"MAIL FROM:<a@b.test>\r\n")
        assert smtp_lines(f)[0] == 503  # before EHLO
        sock.sendall(b"EHLO client.test\r\n")
        code, lines = smtp_lines(f)
        assert code == 250 and "250-STARTTLS" in lines + [lines[-1].replace(" ", "-", 1)]
        sock.sendall(b"RCPT TO:<x@example.test>\r\n")
        assert smtp_lines(f)[0] == 503  # RCPT before MAIL
        sock.sendall(b"FOO\r\n")
        assert smtp_lines(f)[0] == 500
        # STARTTLS with a command pipelined behind it: must be thrown away.
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        code, lines = smtp_lines(f)
        assert code == 220
        ctx = ssl.create_default_context(cafile=r["ca_file"])
        tls = ctx.wrap_socket(sock, server_hostname="mail.example.test")
        tf = tls.makefile("rb")
        tls.sendall(b"MAIL FROM:<a@b.test>\r\n")
        assert smtp_lines(tf)[0] == 503  # EHLO again first (RFC 3207 4.2)
        tls.sendall(b"EHLO client.test\r\n")
        code, lines = smtp_lines(tf)
        assert code == 250 and not any("STARTTLS" in l for l in lines)
        tls.sendall(b"NOOP\x00MAIL FROM:<x@y>\r\n")
        assert smtp_lines(tf)[0] == 500  # a NUL octet is never cut off and obeyed
        tls.sendall(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@example.test>\r\nDATA\r\n")
        assert [smtp_lines(tf)[0] for _ in range(3)] == [250, 250, 354]
        tls.sendall(b"line one\r\nbare\nlf\r\n..dot\r\n.\r\n")
        code, lines = smtp_lines(tf)
        assert code == 250 and "queued as" in lines[0]
        tls.sendall(b"QUIT\r\n")
        assert smtp_lines(tf)[0] == 221
        tls.close()
    obs = valid_world.stop()
    (s,) = obs["smtp_sessions"]
    assert s["pipelined_after_starttls"] == len(b"MAIL FROM:<injected@evil.test>\r\n")
    assert s["peer"].startswith("127.")
    assert [c["verb"] for c in s["commands"] if c["verb"] == "MAIL"] == ["MAIL"] * 3
    assert [(c["verb"], c["reply"]) for c in s["commands"]][:5] == [
        ("MAIL", 503), ("EHLO", 250), ("RCPT", 503), ("FOO", 500), ("STARTTLS", 220)]
    (m,) = s["messages"]
    body = b"line one\r\nbare\nlf\r\n.dot\r\n"
    assert m["bytes"] == len(body) and m["sha256"] == hashlib.sha256(body).hexdigest()


def test_dns_shapes(world_factory, tmp_path):
    lines = "@        MX    10 mail\n" \
            "www      CNAME alias\n" \
            "alias    CNAME mail\n" \
            "multi    TXT   \"part one \" \"part two\"\n" \
            "multi    TXT   \"second record\"\n" \
            "fixed    A     192.0.2.7\n"
    lines += "".join(f"big      TXT   \"{i:02d}{'x' * 90}\"\n" for i in range(20))
    w = world_factory(write_scenario(tmp_path, lines), "--mode", "testing")
    assert w.ready["mode"] == "testing"
    mail = w.ready["hosts"]["mail.example.test"]
    chain = query(w, "www." + DOMAIN, "A")
    types = [rrset.rdtype for rrset in chain.answer]
    assert types == [dns.rdatatype.CNAME, dns.rdatatype.CNAME, dns.rdatatype.A]
    assert chain.answer[-1][0].address == mail
    multi = query(w, "multi." + DOMAIN, "TXT")
    got = sorted(tuple(rr.strings) for rr in multi.answer[0])
    assert got == [(b"part one ", b"part two"), (b"second record",)]
    assert query(w, "fixed." + DOMAIN, "A").answer[0][0].address == "192.0.2.7"
    # Truncation: over 512 octets without EDNS -> TC over UDP, whole over TCP.
    udp = query(w, "big." + DOMAIN, "TXT")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = query(w, "big." + DOMAIN, "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 20
    edns = query(w, "big." + DOMAIN, "TXT", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC and len(edns.answer[0]) == 20 and edns.edns == 0
    obs = w.stop()
    big = [(q["transport"], q["rcode"]) for q in obs["dns"] if q["name"] == "big.example.test"]
    assert big == [("udp", "NOERROR"), ("tcp", "NOERROR"), ("udp", "NOERROR")]


def test_no_policy_section_serves_404(world_factory, tmp_path, ststest_bin):
    w = world_factory(write_scenario(tmp_path, "@ MX 10 mail\n"))
    assert w.ready["policy"] is False
    addr = w.ready["hosts"]["mta-sts.example.test"]
    with socket.create_connection((addr, w.ready["http_port"]), timeout=10) as s:
        s.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
                  b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 404 ")
    obs = w.stop()
    assert [(f["scheme"], f["status"]) for f in obs["policy_fetches"]] == [("http", 404)]


def test_two_worlds_at_once(world_factory):
    scn = scenario_path("valid-enforce")
    a = world_factory(scn)
    b = world_factory(scn)
    assert a.ready["dns"] != b.ready["dns"]
    assert set(a.ready["hosts"].values()).isdisjoint(b.ready["hosts"].values())
    for w in (a, b):
        assert query(w, DOMAIN, "MX").rcode() == dns.rcode.NOERROR
        assert w.stop()["dns"][0]["name"] == DOMAIN


def test_explicit_block_in_use(world_factory, ststest_bin):
    scn = scenario_path("valid-enforce")
    a = world_factory(scn)
    block = a.ready["block"]
    res = subprocess.run([ststest_bin, "world", "--block", block, str(scn)],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 70
    assert "Address already in use" in res.stderr and block in res.stderr
    a.stop()


def test_bad_zone_line(ststest_bin, tmp_path):
    path = write_scenario(tmp_path, "@ MX 10 mail\nbad A 1.2.3\n")
    res = subprocess.run([ststest_bin, "world", str(path)], capture_output=True, text=True, timeout=20)
    assert res.returncode == 65
    assert f"{path}:7:" in res.stderr and "bad A 1.2.3" in res.stderr
    assert res.stdout == ""


def test_bad_scenario_file(ststest_bin, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nabout: y\nrefs: [a]\ndomain: example.test\nbogus: 1\n"
                    "expect:\n  enforce: {outcome: delivered}\n")
    res = subprocess.run([ststest_bin, "world", str(path)], capture_output=True, text=True, timeout=20)
    assert res.returncode == 65
    assert f"{path}:5:" in res.stderr and "bogus" in res.stderr
    res = subprocess.run([ststest_bin, "world", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 65 and "missing.yaml" in res.stderr


@pytest.mark.parametrize("args", [[], ["a.yaml", "b.yaml"], ["--dns-port", "0", "x.yaml"],
                                  ["--block", "10.0.0", "x.yaml"], ["--nope", "x.yaml"]])
def test_usage_errors(ststest_bin, args):
    res = subprocess.run([ststest_bin, "world", *args], capture_output=True, text=True, timeout=20)
    assert res.returncode == 64, res.stderr
    assert res.stderr


def test_help(ststest_bin):
    res = subprocess.run([ststest_bin, "world", "--help"], capture_output=True, text=True, timeout=20)
    assert res.returncode == 0 and res.stdout.startswith("usage: ststest world")


CERT_FAULTS = {
    # host: (cert spec in YAML, expected OpenSSL verify code or None for a valid one)
    "good.example.test": ("{}", None),
    "expired.example.test": ("{cert: {expired: true}}", 10),       # X509_V_ERR_CERT_HAS_EXPIRED
    "future.example.test": ("{cert: {not_yet_valid: true}}", 9),   # X509_V_ERR_CERT_NOT_YET_VALID
    "self.example.test": ("{cert: {self_signed: true}}", 18),      # DEPTH_ZERO_SELF_SIGNED_CERT
    "unknown.example.test": ("{cert: {unknown_ca: true}}", 20),    # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    "wrong.example.test": ("{cert: {names: [other.example.test]}}", 62),  # HOSTNAME_MISMATCH
    "rsa.example.test": ("{cert: {key: rsa}}", None),
}


def starttls(addr, port, ca_file, name):
    """EHLO + STARTTLS + handshake verifying name; returns the TLS socket (or raises)."""
    sock = socket.create_connection((addr, port), timeout=10)
    f = sock.makefile("rb")
    assert smtp_lines(f)[0] == 220
    sock.sendall(b"EHLO client.test\r\n")
    code, lines = smtp_lines(f)
    if not any(l[4:] == "STARTTLS" for l in lines):
        sock.close()
        return None
    sock.sendall(b"STARTTLS\r\n")
    assert smtp_lines(f)[0] == 220
    ctx = ssl.create_default_context(cafile=ca_file)
    try:
        return ctx.wrap_socket(sock, server_hostname=name)
    except Exception:
        sock.close()
        raise


def test_certificate_faults_and_policy_knobs(world_factory, tmp_path):
    mx = "".join(f"  {h}: {spec}\n" for h, (spec, _) in CERT_FAULTS.items())
    mx += "  plain.example.test: {starttls: false}\n"
    extra = ("policy:\n"
             "  body: \"version: STSv1\\nmode: ${mode}\\nmx: good.example.test\\nmax_age: 60\\n\"\n"
             "  status: 200\n"
             "  content_type: text/html\n"
             "mx:\n" + mx)
    w = world_factory(write_scenario(tmp_path, "@ MX 10 good\n", extra), "--mode", "testing")
    r = w.ready
    assert set(r["hosts"]) == set(CERT_FAULTS) | {"plain.example.test", "mta-sts.example.test"}
    for host, (_, code) in CERT_FAULTS.items():
        if code is None:
            tls = starttls(r["hosts"][host], r["smtp_port"], r["ca_file"], host)
            der = tls.getpeercert(binary_form=True)
            tls.close()
            if host.startswith("rsa"):
                text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-text"],
                                      input=der, capture_output=True, timeout=10).stdout
                assert b"rsaEncryption" in text
        else:
            with pytest.raises(ssl.SSLCertVerificationError) as e:
                starttls(r["hosts"][host], r["smtp_port"], r["ca_file"], host)
            assert e.value.verify_code == code, (host, e.value.verify_message)
    assert starttls(r["hosts"]["plain.example.test"], r["smtp_port"], r["ca_file"],
                    "plain.example.test") is None

    ctx = ssl.create_default_context(cafile=r["ca_file"])
    with socket.create_connection((r["hosts"]["mta-sts.example.test"], r["https_port"]), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="mta-sts.example.test") as t:
            t.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
                      b"Connection: close\r\n\r\n")
            reply = b""
            while chunk := t.recv(4096):
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Type: text/html" in head
    assert body == b"version: STSv1\nmode: testing\nmx: good.example.test\nmax_age: 60\n"

    obs = w.stop()
    by_host = {}
    for s in obs["smtp_sessions"]:
        by_host.setdefault(s["host"], []).append(s)
    for host, (_, code) in CERT_FAULTS.items():
        (s,) = by_host[host]
        if code is None:
            assert s["tls"] and s["sni"] == host
        else:
            assert s["tls"] is None and s["tls_error"], s  # the client gave up in the handshake
    (plain,) = by_host["plain.example.test"]
    assert plain["tls"] is None and [c["verb"] for c in plain["commands"]] == ["EHLO"]
