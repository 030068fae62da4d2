"""The world's record of every connection to the policy host (`policy_connections` in
the observed line): how it ended, checked with curl as the client. It tells a sender
that tried the policy host and gave up (a certificate it rejects) from one that never
came, which `policy_fetches` alone cannot."""
import pytest

from conftest import curl_policy


@pytest.fixture
def make_world(policy_world):
    """The base policy world (conftest.POLICY_SCENARIO), a valid policy host unless `extra`
    says otherwise."""
    return lambda extra="": policy_world(extra, outcome="delivered")


def curl(world, cafile, name="mta-sts.example.test"):
    """GET the policy from the policy host's address, asking for host `name`."""
    return curl_policy(world, cafile=cafile, name=name, text=True)


def conns(obs):
    return [{k: c.get(k) for k in ("scheme", "sni", "outcome", "error")} | {
        "tls": c["tls_version"] is not None} for c in obs["policy_connections"]]


def test_outcomes(make_world, tmp_path):
    w = make_world()
    ca = w.ready["ca_file"]
    # 1. A fetch: "request", with the SNI and TLS version.
    assert curl(w, ca).returncode == 0
    # 2. A client that does not trust the world's CA aborts the handshake with an
    #    alert (OpenSSL verifies the chain inside the handshake): "tls_failed".
    res = curl(w, "/etc/ssl/certs/ca-certificates.crt")
    assert res.returncode == 60, res.stderr  # CURLE_PEER_FAILED_VERIFICATION
    # 3. A client that trusts the CA but asked for another name: libcurl checks the
    #    name after the handshake and closes without a request: "no_request".
    res = curl(w, ca, name="www.example.test")
    assert res.returncode == 60, res.stderr
    assert "no alternative certificate subject name" in res.stderr
    obs = w.stop()
    got = conns(obs)
    assert got[0] == {"scheme": "https", "sni": "mta-sts.example.test", "outcome": "request",
                      "error": None, "tls": True}
    assert got[1]["outcome"] == "tls_failed" and not got[1]["tls"]
    assert "unknown ca" in got[1]["error"]
    assert got[2] == {"scheme": "https", "sni": "www.example.test", "outcome": "no_request",
                      "error": None, "tls": True}
    assert len(got) == 3
    assert [f["status"] for f in obs["policy_fetches"]] == [200]


def test_refused_is_recorded(make_world):
    w = make_world("https: false\n")
    res = curl(w, w.ready["ca_file"])
    assert res.returncode != 0
    obs = w.stop()
    assert [(c["scheme"], c["outcome"]) for c in obs["policy_connections"]] == [
        ("https", "refused")]
    assert obs["policy_fetches"] == []
