"""Shared pytest fixtures and helpers of the integration suite.

Fixtures: the built binary (`ststest_bin`), the source tree (`src_dir`), fake worlds
(`world_factory` per test, `module_world_factory` per module, `policy_world`: the base
scenario of the policy host's tests, POLICY_SCENARIO, with the knobs a test adds).
Helpers, imported by the test modules: `need` (an independent peer tool or a skip),
scenario files (`scenario_path`, `scenario_file`), the sender pointed at a world
(`sender_args`, `run_sender`, `json_doc`, `send_json`), the policy host through curl
(`curl_policy`), the next step of a multi-step world (`next_step`), a UDP server on a
thread of its own for DNS peers written in Python (`UdpServer`), and the rule for tests
that need a real peer installed (`require_real_peer`).

This file imports only the standard library and pytest: tests/hostile/conftest.py loads it
by path.
"""
import atexit
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading

import pytest

SRC = pathlib.Path(os.environ.get("STSTEST_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))

# No test writes into the user's own cache folder: what the sender keeps there by default
# (the policy cache, the TLS report store) goes to a private folder for this run. A test
# that means the default location sets XDG_CACHE_HOME itself.
if not os.environ.get("STSTEST_TEST_XDG"):
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ststest-xdg-")
    os.environ["STSTEST_TEST_XDG"] = "1"  # once, also when loaded again by tests/hostile
    atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)

# The recipient of the bundled scenarios (their domain is example.test).
RCPT = "postmaster@example.test"


def need(tool):
    """The path of an independent peer tool (dig, curl, openssl, swaks, …); the test
    is skipped, with the reason, when it is not installed."""
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/setup-tests.sh installs it)")
    return path


def require_real_peer(opt_out, tests, root_reason, problem, peer):
    """For tests of a real peer (Postfix, postfix-mta-sts-resolver): skip when the user
    opted out with `opt_out`=1, or, saying so, when not root (README line (2) run by a
    user with sudo: not a broken set-up); otherwise fail loudly with `problem()`, the
    reason the peer cannot run here (None when it can), so that a broken set-up never
    looks like a passing suite."""
    if os.environ.get(opt_out) == "1":
        pytest.skip(f"{opt_out}=1: {tests} disabled")
    if os.geteuid() != 0:
        pytest.skip(f"{root_reason}: run the tests as root to include it")
    why = problem()
    if why:
        pytest.fail(f"cannot run {peer}: {why} (set {opt_out}=1 to skip {tests})")


def _find_bin():
    env = os.environ.get("STSTEST_BIN")
    if env:
        return pathlib.Path(env)
    for cand in (SRC / "build" / "ststest",):
        if cand.exists():
            return cand
    pytest.fail("STSTEST_BIN not set and build/ststest not found: build first (see README)")


@pytest.fixture(scope="session")
def ststest_bin():
    return str(_find_bin())


@pytest.fixture(scope="session")
def src_dir():
    return SRC


# ---- scenario files ---------------------------------------------------------------------

def scenario_path(name):
    """A bundled scenario: scenarios/NAME.yaml."""
    return SRC / "scenarios" / f"{name}.yaml"


def scenario_file(directory, name, text):
    """Write a scenario of a test's own as DIRECTORY/NAME.yaml; returns its path."""
    path = pathlib.Path(directory) / f"{name}.yaml"
    path.write_text(text)
    return path


# ---- fake worlds ------------------------------------------------------------------------

class World:
    """A running `ststest world SCENARIO`: the ready line, then the observer log on stop."""

    def __init__(self, binary, scenario, extra=()):
        self.proc = subprocess.Popen([binary, "world", *extra, str(scenario)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc.wait(timeout=10)
            raise RuntimeError(f"world exited {self.proc.returncode} before ready: {err}")
        self.ready = json.loads(line)
        assert self.ready["event"] == "ready", line
        self.observed = None
        self.stderr = ""

    @property
    def dns(self):
        return self.ready["dns"]

    def dns_host_port(self):
        host, _, port = self.ready["dns"].rpartition(":")
        return host, int(port)

    def stop(self, sig=signal.SIGTERM):
        if self.observed is not None or self.proc.poll() is not None:
            return self.observed
        self.proc.send_signal(sig)
        out, self.stderr = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, f"world exited {self.proc.returncode}: {self.stderr}"
        lines = [l for l in out.splitlines() if l.strip()]
        assert lines, "world printed no observed line"
        self.observed = json.loads(lines[-1])
        assert self.observed["event"] == "observed"
        return self.observed

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@contextlib.contextmanager
def _worlds(binary):
    """make(scenario, *extra) -> a started World; every one is killed on leaving."""
    worlds = []

    def make(scenario, *extra):
        w = World(binary, scenario, extra)
        worlds.append(w)
        return w

    try:
        yield make
    finally:
        for w in worlds:
            w.kill()


@pytest.fixture
def world_factory(ststest_bin):
    """make(scenario_path, *world_options) -> a started World, killed after the test."""
    with _worlds(ststest_bin) as make:
        yield make


@pytest.fixture(scope="module")
def module_world_factory(ststest_bin, tmp_path_factory):
    """make(scenario_text, *world_options) -> a started World shared by a module's tests
    (written to a directory of its own), killed after the module."""
    with _worlds(ststest_bin) as make:
        yield lambda text, *extra: make(
            scenario_file(tmp_path_factory.mktemp("world"), "world", text), *extra)


def world_ports(base):
    """`ststest world` options for ports of its own: SMTP BASE+25, DNS BASE+53, HTTPS
    BASE+443 and HTTP BASE+80."""
    return ("--smtp-port", str(base + 25), "--dns-port", str(base + 53),
            "--https-port", str(base + 443), "--http-port", str(base + 80))


def next_step(world):
    """SIGUSR1: the world applies its next step; returns the step line."""
    world.proc.send_signal(signal.SIGUSR1)
    ev = json.loads(world.proc.stdout.readline())
    assert ev["event"] == "step" and "error" not in ev, ev
    return ev


def curl_policy(world, *args, scheme="https", name="mta-sts.example.test", cafile=None,
                path="/.well-known/mta-sts.txt", text=False, timeout=30):
    """curl, the independent HTTP client, at the world's policy host (its address from the
    ready line) asking for host `name` over `scheme`, trusting `cafile` (default: the
    world's CA); `args` go before the URL. Returns the CompletedProcess."""
    r = world.ready
    host = f"{name}:{r['https_port'] if scheme == 'https' else r['http_port']}"
    trust = ["--cacert", cafile or r["ca_file"]] if scheme == "https" else []
    return subprocess.run([need("curl"), "-sS", *trust, "--resolve",
                           f"{host}:{r['hosts']['mta-sts.example.test']}", *args,
                           f"{scheme}://{host}{path}"],
                          capture_output=True, text=text, timeout=timeout)


# ---- the base scenario of the policy host's tests (test_world_policy*.py) ---------------

# The policy the base scenario serves, as the policy host sends it.
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 86400\r\n"

POLICY_SCENARIO = """\
name: world-policy
about: A policy host with the knobs a test gives.
refs: [RFC 8461 3.3]
domain: example.test
dns: |
  @ MX 10 mail
policy:
  mode: enforce
  mx: [mail.example.test]
  max_age: 86400
"""


@pytest.fixture
def policy_world(world_factory, tmp_path):
    """make(extra="", outcome="deferred", tail=None) -> a started world of POLICY_SCENARIO
    whose `policy:` has the keys in `extra` as well; `tail` (default: an expectation of
    `outcome`) follows the policy section."""
    def make(extra="", outcome="deferred", tail=None):
        if tail is None:
            tail = f"expect:\n  enforce: {{outcome: {outcome}}}\n"
        text = POLICY_SCENARIO + textwrap.indent(textwrap.dedent(extra), "  ") + tail
        return world_factory(scenario_file(tmp_path, "policy", text))
    return make


# ---- the sender pointed at a world ------------------------------------------------------

def sender_args(world, cache=False, dns=None, ca_file=None, smtp_port=None):
    """The options that point the sender at the world: its DNS server (or `dns`), its CA
    (or `ca_file`), its SMTP port (or `smtp_port`) and HTTPS port. No policy cache unless
    asked (`cache`: a FILE for --cache, or True for the default cache): scenarios share
    one domain and policy id, so a cache would carry one test's policy into the next
    (test_cache_send.py tests the cache)."""
    r = world.ready
    if cache is True:
        cached = []
    elif cache:
        cached = ["--cache", str(cache)]
    else:
        cached = ["--no-cache"]
    return ["--dns", dns or r["dns"], "--ca-file", str(ca_file or r["ca_file"]),
            "--smtp-port", str(smtp_port or r["smtp_port"]),
            "--https-port", str(r["https_port"]), "--timeout", "10", *cached]


def run_sender(binary, command, world, *args, input=None, env=None, **point):
    """`ststest COMMAND` at the world (sender_args(world, **point)), then `args`."""
    argv = [binary, command, *sender_args(world, **point), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, input=input,
                          env=env)


def json_doc(r):
    """The one JSON document a run printed on stdout; the test fails, with both streams,
    when stdout is anything else."""
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"stdout is not one JSON document ({e}): {r.stdout!r}\nstderr:\n{r.stderr}")


def send_json(binary, world, *args, command="send", target=RCPT, input=None, **point):
    """`ststest COMMAND --json ARGS TARGET` at the world: (CompletedProcess, document)."""
    r = run_sender(binary, command, world, "--json", *args, target, input=input, **point)
    doc = json_doc(r)
    assert set(doc) == {"results"}, doc
    return r, doc


@pytest.fixture
def send_once(ststest_bin, world_factory):
    """send(scenario, *args, world_options=(), **send_json_options) -> (CompletedProcess,
    document, observed): a world of `scenario` started, send_json(args) once at it, the
    world stopped."""
    def send(scenario, *args, world_options=(), **options):
        w = world_factory(scenario, *world_options)
        r, doc = send_json(ststest_bin, w, *args, **options)
        return r, doc, w.stop()
    return send


# ---- DNS peers of our own ---------------------------------------------------------------

class UdpServer:
    """A UDP server on 127.0.0.1 (a free port; `addr` is "127.0.0.1:PORT") that answers
    each datagram with `self.reply(data)` (bytes, or None: no answer) from a thread of
    its own until close(); `forward(data)` asks `upstream` ("HOST:PORT") instead. The
    thread starts in __init__: a subclass sets its own attributes first."""

    def __init__(self, upstream=None):
        self.upstream = None
        if upstream:
            host, _, port = upstream.rpartition(":")
            self.upstream = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply(self, data):
        raise NotImplementedError

    def serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            out = self.reply(data)
            if out:
                self.sock.sendto(out, peer)

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()

    def forward(self, data):
        """Ask the upstream server the query `data`: its answer, or None after 2 s."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(2)
            up.sendto(data, self.upstream)
            try:
                return up.recv(65535)
            except socket.timeout:
                return None
