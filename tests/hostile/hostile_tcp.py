"""Scripted hostile SMTP and HTTPS servers for tests/hostile/ (loopback only).

`HostileTcp(behaviour)` listens on a loopback port and runs `behaviour(peer)` on a
thread per connection; `peer` (a `Peer`) reads lines and writes bytes, with or without
TLS, and every read and write gives up when the test closes the server, so that no
behaviour outlives its test, however endless it is. The behaviours themselves are the
functions below: SMTP_BEHAVIOURS and HTTPS_BEHAVIOURS name them for the tests.

Each behaviour writes what no well-behaved server writes (a reply code "abc", 10,000
EHLO lines, a multi-line reply without end, silence after STARTTLS, a TLS handshake that
never finishes, a chain of 100 intermediates; an endless chunked body, a body dripped
one byte a second, a gzip bomb, 100,000 header lines) and records what the client sent
in `HostileTcp.received` (the SMTP verbs, or the HTTP request lines), so that a test can
assert that no envelope command was ever sent.
"""
import gzip
import socket
import ssl
import threading
import time


class Closed(Exception):
    """The test closed the server, or the client went away."""


class Peer:
    def __init__(self, server, conn):
        self.server, self.conn = server, conn
        self.buf = b""
        conn.settimeout(0.2)

    def _alive(self):
        if self.server.stop.is_set():
            raise Closed()

    def write(self, data):
        data = data.encode() if isinstance(data, str) else data
        while data:
            self._alive()
            try:
                n = self.conn.send(data)
            except (socket.timeout, ssl.SSLWantWriteError):
                continue
            except OSError as e:
                raise Closed() from e
            data = data[n:]

    def read_line(self):
        while b"\n" not in self.buf:
            self._alive()
            try:
                chunk = self.conn.recv(4096)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError as e:
                raise Closed() from e
            if not chunk:
                raise Closed()
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("latin-1")

    def sleep(self, seconds):
        if self.server.stop.wait(seconds):
            raise Closed()

    def hold(self):
        """Say nothing until the client goes away or the test ends."""
        while True:
            self._alive()
            try:
                if not self.conn.recv(4096):
                    raise Closed()
            except socket.timeout:
                continue
            except OSError as e:
                raise Closed() from e

    def starttls(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.conn.settimeout(10)
        try:
            self.conn = ctx.wrap_socket(self.conn, server_side=True)
        except (OSError, ssl.SSLError) as e:
            raise Closed() from e
        self.conn.settimeout(0.2)


class HostileTcp:
    """`behaviour(peer)` for every connection to host:port (port 0: a free one).
    `cert`/`key` are what `peer.starttls()` presents (and, with tls=True, what is
    presented at once: an HTTPS server)."""

    def __init__(self, behaviour, cert=None, key=None, tls=False, host="127.0.0.1"):
        self.behaviour, self.cert, self.key, self.tls = behaviour, cert, key, tls
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.received = []   # SMTP verbs or HTTP request lines, in order
        self.connections = 0
        self.errors = []     # exceptions a behaviour raised (a bug of the test)
        self._threads = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.connections += 1
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn):
        peer = Peer(self, conn)
        try:
            if self.tls:
                peer.starttls(self.cert, self.key)
            self.behaviour(peer)
        except Closed:
            pass
        except Exception as e:  # noqa: BLE001 - reported by close()
            self.errors.append(e)
        finally:
            try:
                peer.conn.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self._accept.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        self.sock.close()
        assert not self.errors, self.errors


# ---- SMTP ---------------------------------------------------------------------------------

def _commands(peer, on_ehlo, on_starttls=None):
    """A minimal SMTP server: 220, then EHLO -> on_ehlo(peer), STARTTLS ->
    on_starttls(peer), anything else -> 502; every verb recorded."""
    peer.write("220 mail.example.test ESMTP hostile\r\n")
    while True:
        line = peer.read_line()
        verb = line.split(" ", 1)[0].upper()
        peer.server.received.append(verb)
        if verb in ("EHLO", "HELO"):
            on_ehlo(peer)
        elif verb == "STARTTLS" and on_starttls:
            on_starttls(peer)
        elif verb == "QUIT":
            peer.write("221 bye\r\n")
            return
        else:
            peer.write("502 5.5.1 not here\r\n")


def _ehlo_starttls(peer):
    peer.write("250-mail.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")


def smtp_reply_code_abc(peer):
    """The greeting's reply code is not three digits."""
    peer.write("abc mail.example.test ESMTP\r\n")
    peer.hold()


def smtp_ehlo_10000_lines(peer):
    """EHLO answered with 10,000 continuation lines (about 300 KB) and a last line."""
    def ehlo(p):
        p.write("".join(f"250-X-HOSTILE-EXTENSION-{i:05d} padding\r\n" for i in range(10000))
                + "250 STARTTLS\r\n")
    _commands(peer, ehlo)


def smtp_endless_multiline(peer):
    """A greeting of continuation lines ("220-") that never ends."""
    i = 0
    while True:
        peer.write("".join(f"220-still greeting you, line {i + k}\r\n" for k in range(100)))
        i += 100


def smtp_silence_after_starttls(peer):
    """STARTTLS offered; the command gets no reply at all."""
    _commands(peer, _ehlo_starttls, lambda p: p.hold())


def smtp_handshake_never_finishes(peer):
    """STARTTLS answered 220; then the ClientHello is read and never answered."""
    _commands(peer, _ehlo_starttls, lambda p: (p.write("220 2.0.0 go ahead\r\n"), p.hold()))


def smtp_long_chain(peer):
    """STARTTLS answered 220; the handshake presents the server's long chain (the
    HostileTcp's cert), and the session goes on as if all were well."""
    def starttls(p):
        p.write("220 2.0.0 go ahead\r\n")
        p.starttls(p.server.cert, p.server.key)
    _commands(peer, _ehlo_starttls, starttls)


def smtp_plain_accepting(peer):
    """No STARTTLS, and everything accepted: where a sender that gave up on TLS would
    deliver in the clear."""
    peer.write("220 mail.example.test ESMTP plain\r\n")
    while True:
        line = peer.read_line()
        verb = line.split(" ", 1)[0].upper()
        peer.server.received.append(verb)
        if verb in ("EHLO", "HELO"):
            peer.write("250-mail.example.test\r\n250 PIPELINING\r\n")
        elif verb == "DATA":
            peer.write("354 go on\r\n")
            while peer.read_line() != ".":
                pass
            peer.write("250 2.0.0 queued\r\n")
        elif verb == "QUIT":
            peer.write("221 bye\r\n")
            return
        else:
            peer.write("250 2.0.0 ok\r\n")


# ---- HTTPS (the policy host) ----------------------------------------------------------------

POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 86400\r\n"


def _request(peer):
    first = peer.read_line()
    peer.server.received.append(first)
    while peer.read_line():
        pass


def https_endless_chunked(peer):
    """200 text/plain with a chunked body that never ends."""
    _request(peer)
    peer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = POLICY.encode() * 64
    while True:
        peer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def https_dripped_body(peer):
    """A valid policy, Content-Length right, dripped one byte a second."""
    _request(peer)
    peer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(POLICY)}\r\n\r\n")
    for ch in POLICY:
        peer.sleep(1)
        peer.write(ch)
    peer.hold()


def https_gzip_bomb(peer):
    """Content-Encoding: gzip, 64 MiB of line feeds compressed to about 64 KiB."""
    _request(peer)
    body = peer.server.bomb
    peer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
               f"Content-Length: {len(body)}\r\n\r\n")
    peer.write(body)
    peer.hold()


def gzip_bomb(mib=64):
    return gzip.compress(b"\n" * (mib << 20), compresslevel=9)


def https_100k_headers(peer):
    """200, then 100,000 short header lines (about 1.4 MB) before the body."""
    _request(peer)
    peer.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
    for block in range(100):
        peer.write("".join(f"X-H{block:02d}{i:03d}: a\r\n" for i in range(1000)))
    peer.write(f"Content-Length: {len(POLICY)}\r\n\r\n{POLICY}")
    peer.hold()


def https_policy(peer):
    """A well-behaved policy host: 200 text/plain, the enforce POLICY."""
    _request(peer)
    peer.write(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(POLICY)}"
               f"\r\nConnection: close\r\n\r\n{POLICY}")


class Switch:
    """A behaviour that is `first` until switch() is called, then `then`."""

    def __init__(self, first, then):
        self.current, self.then = first, then

    def switch(self):
        self.current = self.then

    def __call__(self, peer):
        return self.current(peer)
