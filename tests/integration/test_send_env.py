"""What the sender takes from its environment, and what it must not.

* The policy fetch never goes through a proxy named by $https_proxy / $ALL_PROXY: RFC 8461
  3.3 sends it to mta-sts.<domain> at the address our own resolver found.
* With no --ca-file, the policy host and the MX are checked against one trust store,
  OpenSSL's default paths, so $SSL_CERT_FILE counts for both (it used to count for SMTP
  only, libcurl keeping its own compiled-in bundle for HTTPS).
"""
import json
import os
import subprocess

from conftest import SRC

RCPT = "postmaster@example.test"


def send(binary, world, *args, env_extra=None, ca=True):
    r = world.ready
    argv = [binary, "send", "--json", "--no-cache", "--dns", r["dns"],
            "--smtp-port", str(r["smtp_port"]), "--https-port", str(r["https_port"]),
            "--timeout", "10", *(["--ca-file", r["ca_file"]] if ca else []), *args, RCPT]
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("https_proxy", "all_proxy", "http_proxy", "no_proxy",
                                "ssl_cert_file", "ssl_cert_dir")}
    env.update(env_extra or {})
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    return res, json.loads(res.stdout)["results"][0]


def test_policy_fetch_ignores_proxy_variables(ststest_bin, world_factory):
    w = world_factory(SRC / "scenarios" / "valid-enforce.yaml")
    # Port 9 on loopback: nothing listens there, so a proxied fetch would fail.
    proxy = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
             "ALL_PROXY": "http://127.0.0.1:9", "all_proxy": "http://127.0.0.1:9"}
    res, result = send(ststest_bin, w, env_extra=proxy)
    assert res.returncode == 0, res.stderr
    assert result["policy"]["source"] == "fetched", res.stderr
    assert result["failures"] == []
    obs = w.stop()
    assert [f["status"] for f in obs["policy_fetches"]] == [200]


def test_ssl_cert_file_is_one_trust_store_for_mx_and_policy_host(ststest_bin, world_factory):
    w = world_factory(SRC / "scenarios" / "valid-enforce.yaml")
    res, result = send(ststest_bin, w, ca=False,
                       env_extra={"SSL_CERT_FILE": w.ready["ca_file"],
                                  "SSL_CERT_DIR": "/nonexistent"})
    assert res.returncode == 0, res.stderr
    assert result["policy"]["source"] == "fetched", res.stderr
    assert result["mx"][0]["tls"]["verified"] is True
    # And without it, the world's throw-away CA is trusted by neither side.
    w2 = world_factory(SRC / "scenarios" / "valid-enforce.yaml")
    res, result = send(ststest_bin, w2, ca=False, env_extra={"SSL_CERT_DIR": "/nonexistent"})
    # No trusted policy: no policy at all (RFC 8461 3.3), delivered over unverified TLS.
    assert res.returncode == 0, res.stderr
    assert result["policy"]["source"] == "none"
    assert "sts-webpki-invalid" in result["failures"], result
    assert result["mx"][0]["tls"]["verified"] is False
