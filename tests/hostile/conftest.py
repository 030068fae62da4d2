"""Fixtures of the hostile suite: what a hostile peer does to our sender.

The binary, the source tree and the fake world come from tests/integration/conftest.py
(loaded by path, not copied); trap_factory gives traps (hostile_run.Trap) and closes
them after the test; pki is a throw-away CA of the session (hostile_certs.Pki) with a leaf
for mail.example.test and mta-sts.example.test. The helpers the tests import are in hostile_run.py and
hostile_dns.py: a test module never imports a conftest.
"""
import importlib.util
import pathlib
import types

import pytest

from hostile_certs import Pki
from hostile_run import Trap

_spec = importlib.util.spec_from_file_location(
    "ststest_integration_conftest",
    pathlib.Path(__file__).resolve().parents[1] / "integration" / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)

# The fixtures and helpers of the integration suite, under the same names: its fixtures
# serve this suite too, and a session that collects both suites has one module named
# "conftest", which the integration suite's modules import their helpers from.
globals().update({name: value for name, value in vars(_integration).items()
                  if not name.startswith("_") and not isinstance(value, types.ModuleType)})


@pytest.fixture
def trap_factory():
    traps = []

    def make(host="127.0.0.1", port=0):
        t = Trap(host, port)
        traps.append(t)
        return t

    yield make
    for t in traps:
        t.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.server = p.leaf("server", ["mail.example.test", "mta-sts.example.test"])
    return p
