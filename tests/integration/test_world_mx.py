"""The MX fault knobs of `ststest world` (mx: HOST: starttls_reply, inject_after_starttls,
tls_versions, handshake, greeting, replies, delay, disconnect_after, ehlo_keywords,
cert chain and wildcard names), each checked with an independent peer: raw sockets,
Python's smtplib and ssl, and `openssl s_client -starttls smtp`."""
import smtplib
import socket
import ssl
import subprocess
import textwrap
import time

import pytest

from conftest import need, world_ports

SCENARIO = textwrap.dedent(r"""
    name: world-mx-knobs
    about: Every MX knob on its own host.
    refs: [RFC 5321, RFC 3207]
    domain: example.test
    dns: |
      @ MX 10 refuse
    mx:
      refuse.example.test: {starttls_reply: "454 4.7.0 TLS not available"}
      inject.example.test: {inject_after_starttls: "250 injected\r\n"}
      old.example.test: {tls_versions: {min: "1.0", max: "1.1"}}
      abort.example.test: {handshake: abort}
      busy.example.test: {greeting: "421 4.3.2 busy"}
      closed.example.test: {greeting: "554 5.3.2 no service"}
      script.example.test: {replies: {mail: "451-first line\r\n451 4.3.0 second line"}}
      rcpt.example.test: {replies: {rcpt: "550 5.7.1 no\r\n"}}
      dot.example.test: {replies: {dot: "552 5.3.4 too big for me"}}
      slow.example.test: {delay: {greeting: 1.0, mail: 0.5}}
      drop.example.test: {disconnect_after: mail}
      dropdot.example.test: {disconnect_after: dot}
      kw.example.test: {ehlo_keywords: [SIZE 1000, PIPELINING]}
      kwplain.example.test: {ehlo_keywords: [8BITMIME], starttls: false}
      missing.example.test: {cert: {chain: missing_intermediate}}
      inter.example.test: {cert: {chain: intermediate}}
      wild.example.test: {cert: {names: ['*.example.test']}}
    expect:
      enforce: {outcome: deferred}
    """)


@pytest.fixture(scope="module")
def world(module_world_factory):
    return module_world_factory(SCENARIO, *world_ports(12000))


def addr(world, name):
    return world.ready["hosts"][name + ".example.test"], world.ready["smtp_port"]


def reply(f):
    """One SMTP reply from a file object: (code, [texts])."""
    lines = []
    while True:
        line = f.readline().decode()
        assert line, "server closed the connection"
        lines.append(line.rstrip("\r\n"))
        if line[3:4] != "-":
            return int(line[:3]), [l[4:] for l in lines]


def connect(world, name, timeout=10):
    s = socket.create_connection(addr(world, name), timeout=timeout)
    return s, s.makefile("rb")


def s_client(world, name, *args, input_="QUIT\n"):
    host, port = addr(world, name)
    return subprocess.run([need("openssl"), "s_client", "-starttls", "smtp", "-connect",
                           f"{host}:{port}", "-servername", f"{name}.example.test",
                           "-CAfile", world.ready["ca_file"], *args],
                          input=input_, capture_output=True, text=True, timeout=20)


def test_starttls_refused(world):
    s, f = connect(world, "refuse")
    assert reply(f)[0] == 220
    s.sendall(b"EHLO client.test\r\n")
    code, lines = reply(f)
    assert code == 250 and "STARTTLS" in lines  # advertised ...
    s.sendall(b"STARTTLS\r\n")
    assert reply(f) == (454, ["4.7.0 TLS not available"])  # ... but refused
    s.sendall(b"QUIT\r\n")
    assert reply(f)[0] == 221
    s.close()


def test_injection_after_starttls(world):
    s, f = connect(world, "inject")
    reply(f)
    s.sendall(b"EHLO client.test\r\n")
    reply(f)
    s.sendall(b"STARTTLS\r\n")
    # Both lines arrive before any TLS: the injected bytes are in the clear, right
    # behind the 220, where a careless client would take them for a reply in TLS.
    data = b""
    deadline = time.time() + 5
    while b"250 injected\r\n" not in data and time.time() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"
    s.close()


def test_tls_versions(world):
    res = s_client(world, "old", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Protocol  : TLSv1.1" in res.stdout
    res = s_client(world, "old", "-tls1_2")
    assert res.returncode != 0
    assert "New, (NONE), Cipher is (NONE)" in res.stdout  # no session


def test_handshake_abort(world):
    s, f = connect(world, "abort")
    reply(f)
    s.sendall(b"EHLO client.test\r\n")
    reply(f)
    s.sendall(b"STARTTLS\r\n")
    assert reply(f)[0] == 220
    ctx = ssl.create_default_context(cafile=world.ready["ca_file"])
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(s, server_hostname="abort.example.test")
    s.close()


def test_greetings(world):
    host, port = addr(world, "busy")
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.SMTP(host, port, timeout=10)
    assert e.value.smtp_code == 421
    # 554: the server answers 503 to everything but QUIT (RFC 5321 3.1).
    s, f = connect(world, "closed")
    assert reply(f) == (554, ["5.3.2 no service"])
    s.sendall(b"EHLO client.test\r\n")
    assert reply(f)[0] == 503
    s.sendall(b"QUIT\r\n")
    assert reply(f)[0] == 221
    s.close()


def test_scripted_replies(world):
    host, port = addr(world, "script")
    with smtplib.SMTP(host, port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.mail("a@sender.test") == (451, b"first line\n4.3.0 second line")
        # MAIL was refused: the transaction never started (RFC 5321 3.3).
        assert c.rcpt("postmaster@example.test")[0] == 503
    host, port = addr(world, "rcpt")
    with smtplib.SMTP(host, port, timeout=10) as c:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            c.sendmail("a@sender.test", ["postmaster@example.test"], b"x\r\n")
        assert e.value.recipients == {"postmaster@example.test": (550, b"5.7.1 no")}


def test_dot_refused(world):
    host, port = addr(world, "dot")
    with smtplib.SMTP(host, port, timeout=10) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("a@sender.test", ["postmaster@example.test"], b"Subject: x\r\n\r\nbody\r\n")
        assert e.value.smtp_code == 552


def test_delays(world):
    host, port = addr(world, "slow")
    t0 = time.monotonic()
    c = smtplib.SMTP(host, port, timeout=10)
    t1 = time.monotonic()
    assert t1 - t0 >= 0.9
    c.ehlo("client.test")
    t2 = time.monotonic()
    assert t2 - t1 < 0.5
    assert c.mail("a@sender.test")[0] == 250
    assert time.monotonic() - t2 >= 0.45
    c.quit()


def test_disconnects(world):
    host, port = addr(world, "drop")
    c = smtplib.SMTP(host, port, timeout=10)
    c.ehlo("client.test")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.mail("a@sender.test")
    c.close()
    host, port = addr(world, "dropdot")
    c = smtplib.SMTP(host, port, timeout=10)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.sendmail("a@sender.test", ["postmaster@example.test"], b"Subject: x\r\n\r\nbody\r\n")
    c.close()


def test_ehlo_keywords(world):
    host, port = addr(world, "kw")
    with smtplib.SMTP(host, port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.esmtp_features == {"size": "1000", "pipelining": "", "starttls": ""}
        # SIZE 1000 is also enforced (RFC 1870 6).
        assert c.mail("a@sender.test", ["SIZE=5000"])[0] == 552
    host, port = addr(world, "kwplain")
    with smtplib.SMTP(host, port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.esmtp_features == {"8bitmime": ""}


def test_chains_and_wildcard(world):
    res = s_client(world, "missing", "-verify_return_error", "-verify_hostname",
                   "missing.example.test")
    assert res.returncode != 0
    assert "unable to get local issuer certificate" in res.stdout + res.stderr
    res = s_client(world, "inter", "-verify_return_error", "-verify_hostname",
                   "inter.example.test")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Verify return code: 0 (ok)" in res.stdout
    res = s_client(world, "wild", "-verify_return_error", "-verify_hostname", "wild.example.test")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "*.example.test" in res.stdout


def test_observed(world):
    obs = world.stop()
    by_host = {}
    for sess in obs["smtp_sessions"]:
        by_host.setdefault(sess["host"].split(".")[0], []).append(sess)
    assert by_host["inject"][0]["injected_after_starttls"] == len("250 injected\r\n")
    assert by_host["abort"][0]["handshake_aborted"] is True
    assert by_host["drop"][0]["disconnected_at"] == "mail"
    assert by_host["dropdot"][0]["disconnected_at"] == "dot"
    assert by_host["dropdot"][0]["messages"] == []
    assert by_host["dot"][0]["messages"] == []  # refused by script: not received
    assert [c["reply"] for c in by_host["refuse"][0]["commands"]] == [250, 454, 221]
