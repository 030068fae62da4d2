"""Helpers of the hostile suite: a trap (a TCP listener that counts who connects to it),
running the sender with its wall time and peak RSS measured, and the checks every
hostile case makes: the outcome is deferred or failed (never delivered in the clear
under enforce or --require-tls), the run ended within its --timeout, it stayed below a
stated peak RSS, and the message says what was wrong.

RSS bounds are stated for a Release build. A sanitizer build (ASan keeps freed memory in
quarantine and its own metadata) gets them multiplied by ASAN_RSS_FACTOR: `rss_bound()`.
"""
import functools
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

RCPT = "postmaster@example.test"
# Per-stage --timeout given to the sender in every case, and the bound on a whole run.
TIMEOUT = 5
TIME_LIMIT = 20
# A sanitizer build's RSS bounds are this many times a Release build's.
ASAN_RSS_FACTOR = 4


@functools.lru_cache(maxsize=None)
def sanitized(binary):
    """Whether `binary` is an ASan build (gcc's and clang's both call __asan_init)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def rss_bound(binary, mib):
    """The peak RSS bound in KiB of a case that states `mib` MiB for a Release build."""
    return mib * 1024 * (ASAN_RSS_FACTOR if sanitized(binary) else 1)


# The parent that measures: a fresh interpreter (-I -S: about 8 MiB) forks, the child
# execs argv, and the parent writes the child's ru_maxrss (KiB) to the file argv[1].
# pytest cannot measure its own child: the kernel counts the RSS of the process that
# exec'ed (pytest, holding whatever a test holds) into the child's peak.
_MEASURE = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(argv, timeout, env=None, stdin=subprocess.DEVNULL):
    """Run argv to its end; (CompletedProcess, wall seconds, peak RSS in KiB of argv's
    process alone). A run still going after `timeout` seconds is killed and raises
    subprocess.TimeoutExpired."""
    fd, rss_file = tempfile.mkstemp(prefix="ststest-rss-")
    os.close(fd)
    t0 = time.monotonic()
    try:
        # Its own process group: a run past its time is killed with the parent.
        p = subprocess.Popen(["/usr/bin/python3", "-I", "-S", "-c", _MEASURE, rss_file, *argv],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, stdin=stdin, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise
        elapsed = time.monotonic() - t0
        proc = subprocess.CompletedProcess(argv, p.returncode, out, err)
        with open(rss_file) as f:
            maxrss = int(f.read())
    finally:
        os.unlink(rss_file)
    return proc, elapsed, maxrss


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

    def __init__(self, proc, elapsed, results=True, maxrss=None):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.maxrss = maxrss  # KiB
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
               env=None, time_limit=TIME_LIMIT, wrapper=()):
    """Run the sender with --json, a per-stage --timeout and a --time-limit; the run
    must end within the time limit plus a margin, whatever the peer does. results=False:
    the run is expected to stop before any recipient (no JSON). env: added variables.
    wrapper: a command that runs the sender (setpriv ...)."""
    argv = [*wrapper, binary, command, "--json", "--timeout", str(timeout), "--time-limit",
            str(time_limit), *args, target]
    proc, elapsed, maxrss = run_measured(argv, time_limit + 10, {**os.environ, **(env or {})})
    return Run(proc, elapsed, results, maxrss)


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


def assert_rss_below(run, binary, mib):
    """The run's peak RSS stayed below `mib` MiB (scaled for a sanitizer build)."""
    bound = rss_bound(binary, mib)
    assert run.maxrss < bound, f"peak RSS {run.maxrss} KiB, bound {bound} KiB\n{run.stderr}"


def assert_nothing_in_clear(observed):
    """What a world saw: no envelope command and no message outside TLS."""
    for s in observed["smtp_sessions"]:
        for c in s["commands"]:
            assert not (c["verb"] in ("MAIL", "RCPT", "DATA") and not c["tls"]), s
        for m in s.get("messages", []):
            assert m["tls"], s
