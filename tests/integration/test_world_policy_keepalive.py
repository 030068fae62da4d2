"""The policy server's persistent connections (RFC 9112 9.3), checked with curl: two
requests in one curl run share one connection (curl's `%{num_connects}` counts the
connections it opened), the client's `Connection: close` and HTTP/1.0 close it, faults
that must close still do, and `policy: {keep_alive: false}` closes after every answer
as before. The world's own record (`policy_connections`, `policy_fetches`) agrees."""
import socket
import ssl

from conftest import POLICY
from conftest import curl_policy as curl

URL_PATH = "/.well-known/mta-sts.txt"


def two_requests(w, *args):
    """curl fetching the policy twice in one run (`-Z` off: one after the other on one
    handle); returns (stdout, [num_connects of each])."""
    r = w.ready
    host = f"mta-sts.example.test:{r['https_port']}"
    url = f"https://{host}{URL_PATH}"
    res = curl(w, "--http1.1", *args, "-w", "\nconnects=%{num_connects}\n", "-o", "/dev/null",
               url, "-o", "/dev/null", text=True)
    assert res.returncode == 0, res.stderr
    return [int(l.split("=")[1]) for l in res.stdout.splitlines() if l.startswith("connects=")]


def head(w, *args):
    """The answer's head (curl -D -) as text with its CRLFs, and curl's exit status."""
    res = curl(w, "--http1.1", *args, "-D", "-", "-o", "/dev/null")
    return res.stdout.decode(), res.returncode


def conns(obs):
    return [(c["scheme"], c["outcome"]) for c in obs["policy_connections"]]


def test_two_requests_one_connection(policy_world):
    w = policy_world()
    # The second transfer reuses the first one's connection: it opens none.
    assert two_requests(w) == [1, 0]
    obs = w.stop()
    assert [(f["status"], f["complete"]) for f in obs["policy_fetches"]] == [(200, True)] * 2
    assert conns(obs) == [("https", "request")]


def test_client_connection_close(policy_world):
    w = policy_world()
    text, rc = head(w, "-H", "Connection: close")
    assert rc == 0 and "\r\nConnection: close\r\n" in text
    # curl honours the answer's Connection: close: the second request opens a new one.
    assert two_requests(w, "-H", "Connection: close") == [1, 1]
    obs = w.stop()
    assert conns(obs) == [("https", "request")] * 3


def test_keep_alive_answer_has_no_close(policy_world):
    w = policy_world()
    text, rc = head(w)
    assert rc == 0 and text.startswith("HTTP/1.1 200 OK\r\n")
    assert "Connection:" not in text


def test_http10(policy_world):
    w = policy_world()
    # HTTP/1.0 closes unless the client asks for keep-alive (curl -0 does not).
    assert two_requests(w, "-0") == [1, 1]
    text, rc = head(w, "-0")
    assert rc == 0 and "\r\nConnection: close\r\n" in text
    text, rc = head(w, "-0", "-H", "Connection: keep-alive")
    assert rc == 0 and "\r\nConnection: keep-alive\r\n" in text


def test_knob_off(policy_world):
    w = policy_world("keep_alive: false\n")
    text, rc = head(w)
    assert rc == 0 and "\r\nConnection: close\r\n" in text
    assert two_requests(w) == [1, 1]
    obs = w.stop()
    assert conns(obs) == [("https", "request")] * 3
    assert len(obs["policy_fetches"]) == 3


def test_cut_answer_closes(policy_world):
    w = policy_world("cut_after: 10\n")
    text, rc = head(w)
    assert rc == 18  # CURLE_PARTIAL_FILE
    assert "\r\nConnection: close\r\n" in text


def tls_conn(w):
    r = w.ready
    ctx = ssl.create_default_context(cafile=r["ca_file"])
    raw = socket.create_connection((r["hosts"]["mta-sts.example.test"], r["https_port"]),
                                   timeout=10)
    return ctx.wrap_socket(raw, server_hostname="mta-sts.example.test")


def read_answers(s, n):
    """n answers with Content-Length from s; returns them as bytes (heads and bodies)."""
    data, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed after {len(out)} answers: {data!r}"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(rest) < length:
            rest += s.recv(65536)
        out.append(head + b"\r\n\r\n" + rest[:length])
        data = rest[length:]
    return out, data


def test_pipelined_in_order(policy_world):
    w = policy_world()
    with tls_conn(w) as s:
        req = (f"GET {URL_PATH} HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n"
               "GET /nothing HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n"
               f"HEAD {URL_PATH} HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
               "Connection: close\r\n\r\n").encode()
        s.sendall(req)
        answers, rest = read_answers(s, 2)
        assert answers[0].startswith(b"HTTP/1.1 200 OK\r\n") and answers[0].endswith(POLICY)
        assert answers[1].startswith(b"HTTP/1.1 404 Not Found\r\n")
        # The HEAD answer: fields, no content, and then the server closes.
        while not rest.endswith(b"\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk
            rest += chunk
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in rest
        assert s.recv(65536) == b""
    obs = w.stop()
    assert [(f["method"], f["status"]) for f in obs["policy_fetches"]] == [
        ("GET", 200), ("GET", 404), ("HEAD", 200)]
    assert conns(obs) == [("https", "request")]


def test_request_with_content_closes(policy_world):
    w = policy_world()
    with tls_conn(w) as s:
        s.sendall(f"GET {URL_PATH} HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
                  "Content-Length: 5\r\n\r\nhello".encode())
        (answer,), rest = read_answers(s, 1)
        assert b"\r\nConnection: close\r\n" in answer
        assert rest == b"" and s.recv(65536) == b""


def test_request_cap(policy_world):
    w = policy_world()
    with tls_conn(w) as s:
        # 101 pipelined requests: 100 are answered (STS_HTTP_KEEPALIVE_MAX), the last
        # of them with Connection: close, and then the connection closes.
        one = f"HEAD {URL_PATH} HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n".encode()
        s.sendall(one * 101)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    heads = [h for h in data.split(b"\r\n\r\n") if h]
    assert len(heads) == 100
    assert all(b"Connection" not in h for h in heads[:99])
    assert b"\r\nConnection: close" in heads[99]
    obs = w.stop()
    assert len(obs["policy_fetches"]) == 100 and conns(obs) == [("https", "request")]
