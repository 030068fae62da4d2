"""The world counts every DNS query it lost (issue 15): "dns_drops" in the observed
line is the kernel's drops on the world's UDP socket (from /proc/net/udp) plus the
messages the server itself dropped; a world asked for a tiny receive buffer
(STSTEST_DNS_RCVBUF) and flooded while it is stopped must report drops."""
import os
import signal
import socket
import struct
import time

import pytest

from conftest import scenario_file, world_ports

SCENARIO = """\
name: world-dns-drops
about: A world to flood.
refs: [RFC 1035]
domain: example.test
dns: |
  @        MX  10 mail
  _mta-sts TXT "v=STSv1; id=1;"
expect:
  enforce: {outcome: deferred}
"""


def query(qid):
    name = b"".join(bytes([len(l)]) + l for l in (b"_mta-sts", b"example", b"test")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 16, 1)


@pytest.fixture
def scenario(tmp_path):
    return scenario_file(tmp_path, "drops", SCENARIO)


def test_quiet_world_reports_no_drops(world_factory, scenario):
    w = world_factory(scenario, *world_ports(13600))
    host, port = w.dns_host_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(query(1), (host, port))
        assert s.recvfrom(4096)[0][:2] == b"\0\1"
    obs = w.stop()
    assert obs["dns_drops"] == 0
    assert obs["dns_drops_kernel"] == 0 and obs["dns_drops_server"] == 0
    assert obs["dns_drops_measured"] == "proc_net_udp"
    assert obs["dns_rcvbuf"] > 0


def test_malformed_message_counts_as_server_drop(world_factory, scenario):
    w = world_factory(scenario, *world_ports(13700))
    host, port = w.dns_host_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\1\2\3", (host, port))  # shorter than a header
        s.settimeout(3)
        s.sendto(query(2), (host, port))  # answered: the short one was read before it
        s.recvfrom(4096)
    obs = w.stop()
    assert obs["dns_drops_server"] == 1
    assert obs["dns_drops"] == 1


def test_flood_on_tiny_buffer_reports_kernel_drops(world_factory, scenario, monkeypatch):
    monkeypatch.setenv("STSTEST_DNS_RCVBUF", "4096")
    w = world_factory(scenario, *world_ports(13800))
    host, port = w.dns_host_port()
    sent = 5000
    # A stopped world reads nothing: the flood can only fill its receive buffer and
    # the kernel must drop the rest.
    os.kill(w.proc.pid, signal.SIGSTOP)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(sent):
                s.sendto(query(i & 0xFFFF), (host, port))
    finally:
        os.kill(w.proc.pid, signal.SIGCONT)
    time.sleep(0.2)
    obs = w.stop()
    assert obs["dns_rcvbuf"] < 64 * 1024
    assert obs["dns_drops_kernel"] > 0
    assert obs["dns_drops"] == obs["dns_drops_kernel"] + obs["dns_drops_server"]
    # Every query sent was either seen (recorded, or only counted once the observer
    # log is full) or dropped.
    seen = len(obs["dns"]) + obs.get("dns_dropped", 0)
    assert seen + obs["dns_drops_kernel"] == sent
