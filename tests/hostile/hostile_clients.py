"""Hostile clients against the world (`ststest world SCENARIO`), for tests/hostile/.

* `WorldProc`: a world whose stderr goes to a file (an attack makes it log a lot; a pipe
  nobody reads would stop it), with its memory read from /proc/PID/status and the
  `observed` line parsed on SIGTERM.
* `Slowloris`: many connections that each send a prefix and then drip one byte at a
  time, never completing what they started; bounded in count and duration, loopback
  only.
* `client_hellos()`: a real ClientHello (from Python's ssl on memory BIOs) and broken
  variants of it.
Every attack is bounded: a number of connections or datagrams and a number of seconds.
"""
import json
import os
import random
import selectors
import signal
import socket
import ssl
import subprocess
import threading
import time


class WorldProc:
    def __init__(self, binary, scenario, log_path, *extra):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "world", *extra, str(scenario)],
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"world exited {self.proc.returncode} before ready: "
                               f"{self.log()}")
        self.ready = json.loads(line)
        assert self.ready["event"] == "ready", line
        self.observed_text = None

    def host(self, name):
        return self.ready["hosts"][name]

    def dns_addr(self):
        host, _, port = self.ready["dns"].rpartition(":")
        return host, int(port)

    def memory(self):
        """(VmRSS, VmHWM) of the world in KiB."""
        status = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                status[key] = value.strip()
        return int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """SIGTERM; returns the observed line (text) and asserts it is one JSON object
        of event "observed"."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        self._log.close()
        assert self.proc.returncode == 0, f"world exited {self.proc.returncode}: {self.log()}"
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines, "the world printed no observed line"
        self.observed_text = lines[-1]
        doc = json.loads(self.observed_text)
        assert isinstance(doc, dict) and doc["event"] == "observed", self.observed_text[:200]
        return doc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)
        if not self._log.closed:
            self._log.close()


class Slowloris:
    """`count` connections to addr, each sends `prefix`, then one byte of `drip` every
    `interval` seconds, from one thread, until stop() or `duration` seconds. Counts
    the connections made and those the server closed (`closed`)."""

    def __init__(self, addr, count, prefix=b"", drip=b"x", interval=0.5, duration=20):
        self.addr, self.count, self.prefix, self.drip = addr, count, prefix, drip
        self.interval, self.duration = interval, duration
        self.opened = self.closed = self.refused = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def wait_open(self, timeout=20):
        assert self._ready.wait(timeout), "the slowloris connections did not open in time"

    def _run(self):
        socks = []
        for _ in range(self.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(self.addr)
                if self.prefix:
                    s.sendall(self.prefix)
            except OSError:
                self.refused += 1
                s.close()
                continue
            s.setblocking(False)
            socks.append(s)
            self.opened += 1
        self._ready.set()
        end = time.monotonic() + self.duration
        i = 0
        while socks and not self._stop.wait(self.interval) and time.monotonic() < end:
            byte = self.drip[i % len(self.drip):i % len(self.drip) + 1]
            i += 1
            alive = []
            for s in socks:
                try:
                    # A server that closed shows as EOF or a reset.
                    try:
                        if s.recv(65536) == b"":
                            raise ConnectionResetError()
                    except BlockingIOError:
                        pass
                    s.send(byte)
                    alive.append(s)
                except OSError:
                    self.closed += 1
                    s.close()
            socks = alive
        for s in socks:
            s.close()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


def client_hello(server_name="mta-sts.example.test"):
    """The first flight of a real TLS client: a ClientHello record."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def client_hellos(count, seed=14):
    """`count` broken first flights, cycling through kinds: random bytes; the real
    ClientHello with random bytes flipped; cut short; a record header announcing 16 KiB
    followed by junk; an SSLv2-style hello; a handshake record of another type."""
    rnd = random.Random(seed)
    real = client_hello()
    kinds = [
        lambda: bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 600))),
        lambda: bytes(b ^ (rnd.getrandbits(8) if rnd.random() < 0.05 else 0) for b in real),
        lambda: real[:rnd.randint(1, len(real) - 1)],
        lambda: b"\x16\x03\x01\x40\x00" + bytes(rnd.getrandbits(8) for _ in range(2000)),
        lambda: b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + b"\x00" * 40,
        lambda: b"\x16\x03\x03\x00\x04\x0b\x00\x00\x00",
    ]
    return [kinds[i % len(kinds)]() for i in range(count)]


def send_each(addr, payloads, parallel=8, read=True):
    """Send each payload on a connection of its own (`parallel` at a time), then read
    what comes back (up to 0.3 s) and close. Returns how many connections were made."""
    made = 0
    sel = selectors.DefaultSelector()
    pending = list(payloads)
    live = {}
    while pending or live:
        while pending and len(live) < parallel:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(addr)
                s.sendall(pending.pop())
            except OSError:
                s.close()
                continue
            made += 1
            s.setblocking(False)
            live[s] = time.monotonic() + (0.3 if read else 0)
            sel.register(s, selectors.EVENT_READ)
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                if s.recv(65536):
                    continue
            except OSError:
                pass
            sel.unregister(s)
            live.pop(s)
            s.close()
        now = time.monotonic()
        for s in [s for s, t in live.items() if t <= now]:
            sel.unregister(s)
            live.pop(s)
            s.close()
    sel.close()
    return made
