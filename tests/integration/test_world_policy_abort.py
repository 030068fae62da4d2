"""The policy server's `handshake: abort` knob of `ststest world`: the HTTPS listener
accepts the connection and closes it when the ClientHello arrives, without a word of
TLS. Checked with independent clients (curl, `openssl s_client`, Python's ssl); the
plain-HTTP listener is unaffected, the observer records no fetch, and a step can turn
the knob on and off again (SIGUSR1) while a connection accepted before keeps its own
configuration."""
import json
import socket
import ssl
import subprocess
import textwrap

import pytest

from conftest import POLICY, curl_policy, need, next_step

ABORT_LINE = "policy https#{} aborting the TLS handshake (scripted)"


def curl_https(world, *args):
    return curl_policy(world, *args)


def curl_http(world):
    return curl_policy(world, scheme="http")


def s_client(world):
    r = world.ready
    return subprocess.run([need("openssl"), "s_client", "-connect",
                           f"{r['hosts']['mta-sts.example.test']}:{r['https_port']}",
                           "-servername", "mta-sts.example.test", "-CAfile", r["ca_file"]],
                          input="", capture_output=True, text=True, timeout=30)


def test_abort(policy_world):
    w = policy_world("handshake: abort\n")
    res = curl_https(w)
    assert res.returncode == 35, res.stderr  # CURLE_SSL_CONNECT_ERROR
    assert res.stdout == b""

    res = s_client(w)
    assert res.returncode != 0, res.stdout
    assert "no peer certificate available" in res.stdout
    assert "SSL handshake has read 0 bytes" in res.stdout  # not even a ServerHello
    assert "Cipher is (NONE)" in res.stdout

    # The plain-HTTP listener still serves the policy.
    plain = curl_http(w)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == POLICY

    obs = w.stop()
    # No fetch reached HTTP over TLS: only the plain one is recorded.
    assert [(f["scheme"], f["status"]) for f in obs["policy_fetches"]] == [("http", 200)]
    assert ABORT_LINE.format(1) in w.stderr and ABORT_LINE.format(2) in w.stderr
    # Every connection is recorded, in the order they ended.
    assert [(c["scheme"], c["outcome"], c["tls_version"]) for c in obs["policy_connections"]] == [
        ("https", "handshake_aborted", None), ("https", "handshake_aborted", None),
        ("http", "request", None)]


def test_abort_waits_for_client_hello(policy_world):
    """Unlike `https: false`, the connection stays open until the client speaks."""
    w = policy_world("handshake: abort\n")
    r = w.ready
    s = socket.create_connection((r["hosts"]["mta-sts.example.test"], r["https_port"]), 5)
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(1)  # neither data nor EOF while the client is silent
    s.settimeout(5)
    ctx = ssl.create_default_context(cafile=r["ca_file"])
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(s, server_hostname="mta-sts.example.test")
    s.close()
    w.stop()
    assert ABORT_LINE.format(1) in w.stderr


@pytest.mark.parametrize("extra", ["", "handshake: normal\n"])
def test_without_abort_curl_succeeds(policy_world, extra):
    w = policy_world(extra or "https: true\n")
    res = curl_https(w)
    assert res.returncode == 0, res.stderr
    assert res.stdout == POLICY
    obs = w.stop()
    assert [(f["scheme"], f["status"]) for f in obs["policy_fetches"]] == [("https", 200)]
    assert "aborting" not in w.stderr


STEPS = """\
    steps:
      - name: normal
        expect: {enforce: {outcome: delivered}}
      - name: abort
        policy: {mode: enforce, mx: [mail.example.test], max_age: 86400, handshake: abort}
        expect: {enforce: {outcome: delivered}}
      - name: normal again
        policy: {mode: enforce, mx: [mail.example.test], max_age: 86400}
        expect: {enforce: {outcome: delivered}}
    """


def test_steps_switch_abort(policy_world):
    w = policy_world("", tail=textwrap.dedent(STEPS))
    assert json.loads(w.proc.stdout.readline())["step"] == 1
    assert curl_https(w).returncode == 0
    r = w.ready
    ctx = ssl.create_default_context(cafile=r["ca_file"])
    held = socket.create_connection((r["hosts"]["mta-sts.example.test"], r["https_port"]), 5)

    assert next_step(w)["step"] == 2
    assert curl_https(w).returncode == 35
    # Accepted in step 1: that connection keeps the normal handshake.
    with ctx.wrap_socket(held, server_hostname="mta-sts.example.test") as t:
        t.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while chunk := t.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(POLICY)

    assert next_step(w)["step"] == 3
    res = curl_https(w)
    assert res.returncode == 0, res.stderr
    assert res.stdout == POLICY
    obs = w.stop()
    assert [(f["scheme"], f["status"]) for f in obs["policy_fetches"]] == [("https", 200)] * 3
    assert w.stderr.count("aborting the TLS handshake") == 1
