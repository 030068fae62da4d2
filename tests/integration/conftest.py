"""Shared pytest fixtures: the built binary, the source tree, and a fake world."""
import json
import os
import pathlib
import shutil
import signal
import subprocess

import pytest

SRC = pathlib.Path(os.environ.get("STSTEST_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))


def need(tool):
    """The path of an independent peer tool (dig, curl, openssl, swaks, …); the test
    is skipped, with the reason, when it is not installed."""
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/setup-tests.sh installs it)")
    return path


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


@pytest.fixture
def world_factory(ststest_bin):
    worlds = []

    def make(scenario, *extra):
        w = World(ststest_bin, scenario, extra)
        worlds.append(w)
        return w

    yield make
    for w in worlds:
        w.kill()
