"""Helpers of the hostile suite: a trap (a TCP listener that counts who connects to it),
running the sender with its wall time measured, and the checks every hostile case
makes: the outcome is deferred or failed (never delivered in the clear under enforce or
--require-tls), the run ended within its --timeout, and the message says what was wrong.
"""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

RCPT = "postmaster@example.test"
# Per-stage --timeout given to the sender in every case, and the bound on a whole run.
TIMEOUT = 5
TIME_LIMIT = 20


class Trap:
    """A TCP listener on host:port (port 0: a free one) that accepts and closes every
    connection at once, remembering the peers: where nothing should connect."""

    def __init__(self, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.peers = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            self.peers.append(peer)
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class Run:
    """One `ststest send|check --json` run: exit status, JSON result, transcript, time."""

    def __init__(self, proc, elapsed, results=True):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.doc = self.result = None
        if not results:  # a run stopped before any recipient prints nothing on stdout
            assert proc.stdout == "", proc.stdout
            return
        try:
            self.doc = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            pytest.fail(f"stdout is not one JSON document ({e}): {proc.stdout!r}\n{proc.stderr}")
        [self.result] = self.doc["results"]

    def mx(self, host):
        return [m for m in self.result["mx"] if m["host"] == host]


def run_sender(binary, *args, command="send", target=RCPT, timeout=TIMEOUT, results=True,
               env=None):
    """Run the sender with --json, a per-stage --timeout and a --time-limit; the run
    must end within the time limit plus a margin, whatever the peer does. results=False:
    the run is expected to stop before any recipient (no JSON). env: added variables."""
    argv = [binary, command, "--json", "--timeout", str(timeout), "--time-limit",
            str(TIME_LIMIT), *args, target]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIME_LIMIT + 10,
                          env={**os.environ, **(env or {})})
    return Run(proc, time.monotonic() - t0, results)


def world_args(world, cache=None):
    """The options that point the sender at a world (ports, CA, DNS)."""
    r = world.ready
    return ["--dns", r["dns"], "--ca-file", r["ca_file"], "--smtp-port", str(r["smtp_port"]),
            "--https-port", str(r["https_port"]),
            *(["--cache", str(cache)] if cache else ["--no-cache"])]


def assert_not_delivered(run, outcome="deferred", bound=TIMEOUT):
    """The verdict of every hostile case: not delivered, the exit status that goes with
    the outcome, and a run bounded by the sender's own timeout."""
    status = {"deferred": 75, "failed": 69}[outcome]
    assert run.result["outcome"] == outcome, run.stderr
    assert run.returncode == status, run.stderr
    assert run.elapsed < bound, f"took {run.elapsed:.1f} s (bound {bound} s)\n{run.stderr}"


def assert_nothing_in_clear(observed):
    """What a world saw: no envelope command and no message outside TLS."""
    for s in observed["smtp_sessions"]:
        for c in s["commands"]:
            assert not (c["verb"] in ("MAIL", "RCPT", "DATA") and not c["tls"]), s
        for m in s.get("messages", []):
            assert m["tls"], s
