"""`ststest world --standard-ports`: DNS 53, SMTP 25, HTTPS 443, HTTP 80 on the world's
loopback addresses; root only, with clear errors without root or on a taken port."""
import os
import shutil
import socket
import subprocess

import dns.message
import dns.query
import pytest

from conftest import scenario_path


def test_standard_ports(world_factory, ststest_bin):
    if os.geteuid() != 0:
        pytest.skip("--standard-ports needs root")
    scn = scenario_path("valid-enforce")
    w = world_factory(scn, "--standard-ports")
    r = w.ready
    assert (r["smtp_port"], r["https_port"], r["http_port"]) == (25, 443, 80)
    host, port = w.dns_host_port()
    assert port == 53
    a = dns.query.udp(dns.message.make_query("mail.example.test", "A"), host, port=53, timeout=3)
    assert a.answer[0][0].address == r["hosts"]["mail.example.test"]
    with socket.create_connection((r["hosts"]["mail.example.test"], 25), timeout=5) as s:
        assert s.recv(512).startswith(b"220 mail.example.test ")
    # The same block again: the ports are taken.
    res = subprocess.run([ststest_bin, "world", "--standard-ports", "--block", r["block"], str(scn)],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 70
    assert f"{host}:53: Address already in use (a standard port is taken" in res.stderr


def test_standard_ports_need_root(ststest_bin):
    cmd = [ststest_bin, "world", "--standard-ports", str(scenario_path("valid-enforce"))]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("running as root and setpriv is missing: cannot drop root")
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert res.returncode == 77
    assert "--standard-ports binds ports 53, 25, 443 and 80 and must run as root" in res.stderr


def test_standard_ports_exclusive(ststest_bin):
    res = subprocess.run([ststest_bin, "world", "--standard-ports", "--smtp-port", "2525",
                          str(scenario_path("valid-enforce"))],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 64
    assert "cannot be combined" in res.stderr
