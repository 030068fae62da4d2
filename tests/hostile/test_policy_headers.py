"""A policy host that answers with an enormous header (issue 14): a 1 MB header line
used to be reported as libcurl's "Out of memory". The fetch fails, saying "response
header too large" and which cap it hit; under --require-tls the MX (which offers no
STARTTLS) is refused, so nothing is delivered in the clear.
"""
import pytest
import yaml

from hostile_run import assert_not_delivered, assert_nothing_in_clear, run_sender, world_args


def scenario(path, headers):
    doc = {
        "name": "policy-huge-header",
        "about": "The policy host answers 200 with an enormous response header.",
        "refs": ["RFC 8461 3.3"],
        "domain": "example.test",
        "dns": '@ MX 10 mail\n_mta-sts TXT "v=STSv1; id=20240101T000000;"\n',
        "policy": {"mode": "enforce", "mx": ["mail.example.test"], "max_age": 86400,
                   "headers": headers},
        "mx": {"mail.example.test": {"starttls": False}},
        "expect": {"enforce": {"outcome": "deferred", "received": 0}},
    }
    path.write_text(yaml.safe_dump(doc, width=1 << 22))
    return path


CASES = {
    # One line of 1 MB: libcurl refuses it (CURL_MAX_HTTP_HEADER, 100 KiB).
    "one-1MB-line": ({"X-Pad": "a" * 1_000_000},
                     "response header too large: a header line over 102400 bytes "
                     "(libcurl's CURL_MAX_HTTP_HEADER)"),
    # 40 lines of 1000 bytes: each is fine, the section is over our cap of 32 KiB.
    "40-lines-of-1000": ({f"X-Pad-{i}": "b" * 1000 for i in range(40)},
                         "response header too large: the header section is over 32768 "
                         "bytes (STS_FETCH_MAX_HEADER)"),
}


@pytest.mark.parametrize("case", CASES)
def test_policy_header_too_large(ststest_bin, world_factory, tmp_path, case):
    headers, why = CASES[case]
    w = world_factory(scenario(tmp_path / "huge-header.yaml", headers))
    run = run_sender(ststest_bin, *world_args(w), "--require-tls")
    obs = w.stop()

    assert_not_delivered(run, "deferred")
    assert "sts-policy-fetch-error" in run.result["failures"]
    assert run.result["policy"]["source"] == "none"
    assert f"MTASTS policy fetch FAILED: {why} -> sts-policy-fetch-error" in run.stderr
    assert "Out of memory" not in run.stderr
    assert len(obs["policy_fetches"]) == 1
    [mx] = run.mx("mail.example.test")
    assert mx["failure"] == "starttls-not-supported"
    assert_nothing_in_clear(obs)
