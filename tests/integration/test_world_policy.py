"""The policy-server fault knobs of `ststest world` (policy: redirect, headers, size,
chunked, delay, drip, cut_after, tls_versions), checked with curl as the independent
client, and the observer's record of whether the whole answer went out."""
import time

from conftest import POLICY
from conftest import curl_policy as curl


def test_redirect_not_followed(policy_world):
    w = policy_world('redirect: "https://elsewhere.example.test/.well-known/mta-sts.txt"\n')
    res = curl(w, "-D", "-", "-o", "/dev/null")
    assert res.returncode == 0, res.stderr
    head = res.stdout.decode()
    assert head.startswith("HTTP/1.1 301 Moved Permanently\r\n")
    assert "\r\nLocation: https://elsewhere.example.test/.well-known/mta-sts.txt\r\n" in head
    obs = w.stop()
    assert [f["status"] for f in obs["policy_fetches"]] == [301]


def test_redirect_status(policy_world):
    w = policy_world('redirect: "https://elsewhere.example.test/x"\nstatus: 307\n')
    res = curl(w, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert res.stdout.decode() == "307 https://elsewhere.example.test/x"


def test_extra_headers(policy_world):
    w = policy_world("headers: {X-Test: hello world, Cache-Control2: max-age=1}\n")
    res = curl(w, "-D", "-", "-o", "/dev/null")
    head = res.stdout.decode()
    assert "\r\nX-Test: hello world\r\n" in head and "\r\nCache-Control2: max-age=1\r\n" in head


def test_size(policy_world, tmp_path):
    w = policy_world("size: 1048576\n")
    res = curl(w, "--max-filesize", "65536", "-o", "/dev/null")
    assert res.returncode == 63, res.stderr  # CURLE_FILESIZE_EXCEEDED
    body = tmp_path / "body"
    res = curl(w, "-o", str(body))
    assert res.returncode == 0, res.stderr
    data = body.read_bytes()
    assert len(data) == 1048576
    assert data.startswith(POLICY)
    # Valid policy syntax: the padding is unknown keys, ignored (RFC 8461 3.2).
    pad = data[len(POLICY):].split(b"\r\n")
    assert pad[-1] == b"" and all(l.startswith(b"x-pad: ") for l in pad[:-1])


def test_chunked(policy_world):
    w = policy_world("chunked: true\n")
    res = curl(w, "-D", "/dev/stderr")
    assert res.returncode == 0, res.stderr
    assert b"Transfer-Encoding: chunked\r\n" in res.stderr
    assert b"Content-Length" not in res.stderr
    assert res.stdout == POLICY


def test_delay(policy_world):
    w = policy_world("delay: 1.5\n")
    res = curl(w, "--max-time", "0.5")
    assert res.returncode == 28, res.stderr  # CURLE_OPERATION_TIMEDOUT
    t0 = time.monotonic()
    res = curl(w)
    assert res.returncode == 0 and res.stdout == POLICY
    assert time.monotonic() - t0 >= 1.4


def test_drip(policy_world):
    w = policy_world("drip: 0.01\n")
    t0 = time.monotonic()
    res = curl(w)
    assert res.returncode == 0 and res.stdout == POLICY
    assert time.monotonic() - t0 >= 0.5  # 76 octets, 10 ms apart
    # A client that gives up half way leaves an incomplete record.
    res = curl(w, "--max-time", "0.3")
    assert res.returncode == 28
    time.sleep(0.2)
    obs = w.stop()
    assert [f["complete"] for f in obs["policy_fetches"]] == [True, False]
    assert obs["policy_fetches"][1]["body_sent"] < len(POLICY)


def test_cut_after(policy_world):
    w = policy_world("cut_after: 40\n")
    res = curl(w)
    assert res.returncode == 18, res.stderr  # CURLE_PARTIAL_FILE
    assert res.stdout == POLICY[:40]
    obs = w.stop()
    f = obs["policy_fetches"][0]
    assert (f["status"], f["body_sent"], f["complete"]) == (200, 40, False)


def test_tls_versions(policy_world):
    w = policy_world('tls_versions: {min: "1.3"}\n')
    res = curl(w, "--tls-max", "1.2", "-o", "/dev/null")
    assert res.returncode == 35, res.stderr  # CURLE_SSL_CONNECT_ERROR
    res = curl(w, "--tlsv1.3", "-w", "%{http_code}", "-o", "/dev/null")
    assert res.stdout == b"200"


def test_complete_recorded(policy_world):
    w = policy_world("headers: {}\n")
    assert curl(w).stdout == POLICY
    obs = w.stop()
    f = obs["policy_fetches"][0]
    assert (f["complete"], f["body_sent"]) == (True, len(POLICY))


def test_https_off_serves_plain_http_only(policy_world):
    w = policy_world("https: false\n")
    res = curl(w, "-o", "/dev/null")
    assert res.returncode != 0, "HTTPS must not answer with https: false"
    plain = curl(w, scheme="http")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == POLICY
    obs = w.stop()
    assert [(f["scheme"], f["status"]) for f in obs["policy_fetches"]] == [("http", 200)]
