"""A world step builds a new served state and swaps to it (fakedns/served.h): an SMTP
session and an HTTPS policy connection opened before `kill -USR1` and finished after
it still get the old configuration, certificates included, while new connections get
the new one; the old state is freed only once the last connection using it closed.
Checked with Python's socket and ssl modules against `ststest world -v`."""
import json
import signal
import socket
import ssl
import textwrap

from conftest import scenario_file

SCENARIO = textwrap.dedent("""\
    name: world-swap
    about: Connections open across a step keep the world they began in.
    refs: [RFC 8461 3.3, RFC 8461 4.2]
    domain: example.test
    dns: |
      @        MX  10 mail
      _mta-sts TXT "v=STSv1; id=one;"
    policy: {mode: enforce, mx: [mail.example.test], max_age: 86400}
    mx: {mail.example.test: {}}
    steps:
      - {name: first, expect: {enforce: {outcome: delivered}}}
      - name: renamed
        policy: {mode: testing, mx: [mail.example.test], max_age: 600,
                 cert: {names: [other.example.test]}}
        mx:
          mail.example.test: {cert: {names: [renamed.example.test]},
                              replies: {mail: "451 4.3.0 Try again later"}}
        expect: {enforce: {outcome: deferred}}
    """)


def tls_context(world):
    """Verifies the chain against the world's CA; the names are compared by the test."""
    ctx = ssl.create_default_context(cafile=world.ready["ca_file"])
    ctx.check_hostname = False
    return ctx


def dns_names(tls):
    return [v for k, v in tls.getpeercert().get("subjectAltName", ()) if k == "DNS"]


class Smtp:
    """A line-at-a-time SMTP client on a plain socket, upgraded in place by STARTTLS."""

    def __init__(self, world):
        r = world.ready
        self.sock = socket.create_connection((r["hosts"]["mail.example.test"], r["smtp_port"]), 5)
        self.file = self.sock.makefile("rb")
        assert self.reply()[0] == 220

    def reply(self):
        lines = [self.file.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.file.readline())
        return int(lines[-1][:3]), b"".join(lines)

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self, world):
        assert self.cmd("EHLO client.test")[0] == 250
        assert self.cmd("STARTTLS")[0] == 220
        self.sock = tls_context(world).wrap_socket(self.sock, server_hostname="mail.example.test")
        self.file = self.sock.makefile("rb")
        assert self.cmd("EHLO client.test")[0] == 250
        return dns_names(self.sock)

    def close(self):
        self.cmd("QUIT")
        self.sock.close()


def policy_connect(world):
    r = world.ready
    return socket.create_connection((r["hosts"]["mta-sts.example.test"], r["https_port"]), 5)


def policy_fetch(world, sock):
    """TLS and one GET on an open connection: (the certificate's DNS names, the body)."""
    with tls_context(world).wrap_socket(sock, server_hostname="mta-sts.example.test") as tls:
        names = dns_names(tls)
        tls.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
                    b"Host: mta-sts.example.test\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return names, body.decode()


def test_connections_keep_their_world(world_factory, tmp_path):
    w = world_factory(scenario_file(tmp_path, "swap", SCENARIO), "-v")
    first = json.loads(w.proc.stdout.readline())
    assert (first["event"], first["step"]) == ("step", 1)

    held_smtp = Smtp(w)               # accepted on step 1's state
    held_policy = policy_connect(w)   # accepted, not a byte sent yet
    held_smtp.cmd("NOOP")             # both accepted before the step (one loop)

    w.proc.send_signal(signal.SIGUSR1)
    ev = json.loads(w.proc.stdout.readline())
    assert (ev["event"], ev["step"], ev["name"]) == ("step", 2, "renamed") and "error" not in ev

    # New connections: step 2's certificates, policy and script.
    fresh = Smtp(w)
    assert fresh.starttls(w) == ["renamed.example.test"]
    assert fresh.cmd("MAIL FROM:<a@client.test>")[0] == 451
    fresh.close()
    names, body = policy_fetch(w, policy_connect(w))
    assert names == ["other.example.test"] and "mode: testing\r\n" in body

    # The connections opened before the step, used only now: step 1's.
    names, body = policy_fetch(w, held_policy)
    assert names == ["mta-sts.example.test"] and "mode: enforce\r\n" in body
    assert held_smtp.starttls(w) == ["mail.example.test"]
    assert held_smtp.cmd("MAIL FROM:<a@client.test>")[0] == 250
    held_smtp.close()

    obs = w.stop()
    assert len(obs["smtp_sessions"]) == 2
    log = w.stderr
    applied = log.index("step 2 'renamed' applied")
    # Step 1's state (number 1: the start is 0) outlived the swap, and went with the
    # last connection that used it: the SMTP session that began first (mx ...#1).
    released = log.index("served state 1 released")
    assert released > applied
    assert released > log.index("mx mail.example.test#1 closed")
    assert log.index("served state 2 released") > released  # the current one, at the end
