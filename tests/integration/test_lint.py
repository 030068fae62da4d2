"""`ststest lint`: MTA-STS policy files (RFC 8461 3.2) and _mta-sts TXT records (3.1)
checked through the built binary: report lines, JSON shape, exit codes, stdin."""
import json
import subprocess

import pytest

RFC_POLICY = ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
              "mx: backupmx.example.com\nmax_age: 604800\n")


def lint(binary, *args, stdin=None):
    p = subprocess.run([binary, "lint", *args], input=stdin, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def write(tmp_path):
    def make(text, name="policy.txt", mode="w"):
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return str(path)
    return make


def test_help(ststest_bin):
    rc, out, _ = lint(ststest_bin, "--help")
    assert rc == 0
    assert out.startswith("usage: ststest lint")


@pytest.mark.parametrize("args", [[], ["a", "b"], ["--bogus", "x"], ["--mx-host"]])
def test_usage_errors(ststest_bin, args):
    rc, out, err = lint(ststest_bin, *args)
    assert rc == 64
    assert "usage: ststest lint" in err


def test_valid_policy_report(ststest_bin, write):
    path = write(RFC_POLICY)
    rc, out, err = lint(ststest_bin, path)
    assert rc == 0, out + err
    assert out == (f"{path}: valid MTA-STS policy: version STSv1, mode enforce, max_age 604800, "
                   "mx mail.example.com, *.example.net, backupmx.example.com\n")


def test_crlf_policy(ststest_bin, write):
    rc, out, _ = lint(ststest_bin, write(RFC_POLICY.replace("\n", "\r\n")))
    assert rc == 0, out


def test_invalid_policy_lists_every_problem(ststest_bin, write):
    path = write("version: STSv1\nmode: enforcing\nmx: *.*.example.com\nmax_age: 31557601\n"
                 "mode : none\n")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 65
    lines = out.splitlines()
    assert lines[0] == f"{path}:2:7: error: mode 'enforcing' is not one of enforce, testing, none"
    assert lines[1].startswith(f"{path}:3:5: error: invalid mx pattern '*.*.example.com'")
    assert lines[2] == f"{path}:4:10: error: max_age 31557601 is over the maximum of 31557600 seconds"
    assert lines[3] == f"{path}:5:5: error: whitespace before ':'"
    assert lines[-1] == f"{path}: invalid MTA-STS policy (4 errors, 0 warnings)"


def test_missing_fields_have_no_position(ststest_bin, write):
    path = write("mx: mail.example.com\n")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 65
    assert f"{path}: error: missing required field version\n" in out
    assert f"{path}: error: missing required field mode\n" in out
    assert f"{path}: error: missing required field max_age\n" in out


def test_warnings_keep_valid(ststest_bin, write):
    path = write(RFC_POLICY + "mode: testing\nfoo: bar\n")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 0
    assert f"{path}:7:1: warning: mode given again (first on line 2); the first value is used" in out
    assert "mode enforce" in out


def test_policy_json(ststest_bin, write):
    rc, out, _ = lint(ststest_bin, "--json", "--mx-host", "MX1.example.net.", write(RFC_POLICY))
    assert rc == 0
    doc = json.loads(out)
    assert doc["kind"] == "policy"
    assert doc["valid"] is True
    assert doc["errors"] == [] and doc["warnings"] == []
    assert doc["policy"] == {"version": "STSv1", "mode": "enforce", "max_age": 604800,
                             "mx": ["mail.example.com", "*.example.net", "backupmx.example.com"]}
    assert doc["mx_host"] == {"name": "MX1.example.net.", "allowed": True,
                              "pattern": "*.example.net"}


@pytest.mark.parametrize("host,allowed", [
    ("mail.example.com", True), ("a.example.net", True), ("example.net", False),
    ("a.b.example.net", False), ("evil.example.org", False)])
def test_mx_host(ststest_bin, write, host, allowed):
    rc, out, _ = lint(ststest_bin, "--mx-host", host, write(RFC_POLICY))
    assert rc == (0 if allowed else 1)
    assert (f"mx host {host}: allowed" in out) == allowed
    assert (f"mx host {host}: not allowed" in out) == (not allowed)


def test_invalid_policy_json(ststest_bin, write):
    rc, out, _ = lint(ststest_bin, "--json", write("version: STSv1\nmode: enforce\nmax_age: x\n"))
    assert rc == 65
    doc = json.loads(out)
    assert doc["valid"] is False and doc["policy"] is None
    assert {"line": 3, "column": 10,
            "message": "max_age 'x' is not a number of seconds (digits only)"} in doc["errors"]
    assert {"line": 0, "column": 0,
            "message": "no mx field: at least one is required unless mode is none"} in doc["errors"]


def test_txt_rfc_example(ststest_bin, write):
    path = write("v=STSv1; id=20160831085700Z;\n", "txt")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 0
    assert out == f"{path}: valid _mta-sts TXT record: v=STSv1 id=20160831085700Z\n"


def test_txt_json_and_extensions(ststest_bin, write):
    rc, out, _ = lint(ststest_bin, "--json", write("v=STSv1; id=abc123; foo=bar", "txt"))
    assert rc == 0
    doc = json.loads(out)
    assert doc["kind"] == "txt" and doc["valid"] is True
    assert doc["txt"] == {"v": "STSv1", "id": "abc123",
                          "extensions": [{"name": "foo", "value": "bar"}]}


def test_txt_quoted_multistring(ststest_bin, write):
    """Zone-file style strings are concatenated without separator (RFC 8461 3.1)."""
    rc, out, _ = lint(ststest_bin, "--json", write('"v=STSv1; " "id=2024"\n', "txt"))
    assert rc == 0, out
    assert json.loads(out)["txt"]["id"] == "2024"


@pytest.mark.parametrize("record,col,message", [
    ("v=STSv1; id=123456789012345678901234567890123", 13,
     "id is 33 characters long (at most 32 letters or digits)"),
    ("v=STSv1; id=2016-08-31", 17, "id contains '-' (only letters and digits are allowed)"),
    ("v=STSv2; id=1", 3, "unsupported version 'STSv2' (expected STSv1)"),
    ("v=STSv1 id=1", 9, "expected ';' before 'id=1'"),
])
def test_txt_invalid(ststest_bin, write, record, col, message):
    path = write(record + "\n", "txt")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 65
    assert f"{path}:1:{col}: error: {message}\n" in out


def test_txt_forced(ststest_bin, write):
    """--txt: input not starting with v= is still judged as a TXT record."""
    path = write("id=abc; v=STSv1\n", "txt")
    rc, out, _ = lint(ststest_bin, "--txt", "--json", path)
    assert rc == 65
    doc = json.loads(out)
    assert doc["kind"] == "txt" and doc["txt"] is None
    assert doc["errors"] == [{"line": 1, "column": 1, "message": "record must begin with v=STSv1"}]


def test_txt_missing_id(ststest_bin):
    rc, out, _ = lint(ststest_bin, "-", stdin="v=STSv1; foo=bar;")
    assert rc == 65
    assert "<stdin>:1: error: missing required field id" in out


def test_stdin_policy(ststest_bin):
    rc, out, _ = lint(ststest_bin, "--json", "-", stdin=RFC_POLICY)
    assert rc == 0
    doc = json.loads(out)
    assert doc["file"] == "<stdin>" and doc["kind"] == "policy"


def test_mx_host_with_txt_is_usage(ststest_bin):
    rc, _, err = lint(ststest_bin, "--mx-host", "a.example", "-", stdin="v=STSv1; id=1;")
    assert rc == 64
    assert "--mx-host needs a policy" in err


def test_unreadable_file(ststest_bin, tmp_path):
    rc, out, err = lint(ststest_bin, str(tmp_path / "missing.txt"))
    assert rc == 65
    assert "cannot open" in err and "missing.txt" in err


def test_oversized_policy_warns(ststest_bin, write):
    path = write(RFC_POLICY + "".join(f"x{i}: {'y' * 80}\n" for i in range(900)))
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 0
    assert "senders stop reading at 65536" in out


def test_binary_garbage(ststest_bin, write):
    path = write(b"version: STSv1\x00\nmode: enforce\n", "bin")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 65
    assert f"{path}:1:15: error: NUL byte in line" in out


# --------------------------------------------------------------------------
# _smtp._tls TLSRPT records (RFC 8460 3) and telling the three kinds apart

RFC_TLSRPT = "v=TLSRPTv1;rua=mailto:reports@example.com"


def test_tlsrpt_rfc_examples(ststest_bin, write):
    """RFC 8460 3.1.1 and 3.1.2, without a flag: once rejected as an _mta-sts record
    with an unsupported version."""
    path = write(RFC_TLSRPT + "\n", "tlsrpt")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 0, out
    assert out == (f"{path}: valid _smtp._tls TLSRPT record: v=TLSRPTv1 "
                   "rua=mailto:reports@example.com\n")
    rc, out, _ = lint(ststest_bin, "-", stdin="v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt")
    assert rc == 0, out
    assert out.endswith("rua=https://reporting.example.com/v1/tlsrpt\n")


def test_tlsrpt_json(ststest_bin, write):
    path = write("v=TLSRPTv1 ; rua=mailto:tlsrpt@example.com , https://r.example.com/x ;"
                 " foo=bar; x.y=1;\n", "tlsrpt")
    rc, out, _ = lint(ststest_bin, "--json", path)
    assert rc == 0, out
    doc = json.loads(out)
    assert list(doc) == ["kind", "file", "valid", "errors", "warnings", "tlsrpt"]
    assert doc["kind"] == "tlsrpt" and doc["valid"] is True and doc["file"] == path
    assert doc["errors"] == [] and doc["warnings"] == []
    assert doc["tlsrpt"] == {
        "version": "TLSRPTv1",
        "rua": [{"scheme": "mailto", "uri": "mailto:tlsrpt@example.com"},
                {"scheme": "https", "uri": "https://r.example.com/x"}],
        "extensions": {"foo": "bar", "x.y": "1"}}


def test_tlsrpt_warnings_keep_valid(ststest_bin):
    rc, out, _ = lint(ststest_bin, "--json", "-", stdin="v=TLSRPTv1; rua=mailto:a@example.com,"
                      "http://r.example.com; rua=https://b.example.com")
    assert rc == 0, out
    doc = json.loads(out)
    assert [w["column"] for w in doc["warnings"]] == [60, 38]
    assert "rua given more than once" in doc["warnings"][0]["message"]
    assert "scheme 'http' is not supported" in doc["warnings"][1]["message"]
    assert [r["uri"] for r in doc["tlsrpt"]["rua"]] == ["mailto:a@example.com",
                                                       "https://b.example.com"]


@pytest.mark.parametrize("record,col,message", [
    ("v=TLSRPTv2; rua=mailto:a@example.com", 3, "unsupported version 'TLSRPTv2' (expected TLSRPTv1)"),
    ("v=TLSRPTv1; ext=1", 0, "missing required field rua"),
    ("v=TLSRPTv1; rua=", 17, "rua is empty (one or more mailto: or https: URIs required)"),
    ("v=TLSRPTv1; rua=http://r.example.com", 17,
     "rua URI 'http://r.example.com': scheme 'http' is not supported (mailto or https, RFC 8460 3)"),
    ("v=TLSRPTv1; rua=mailto:a@example.com!10m", 37,
     "'!' in a rua URI must be percent-encoded (RFC 8460 3); DMARC's size limit (!10m) is not "
     "part of TLSRPT"),
    ("v=TLSRPTv1; rua=mailto:a@example.com; e=a=b", 42, "value of 'e' contains '='"),
    ("v=TLSRPTv1; rua=mailto:a@example.com; e=a b", 43, "expected ';' before 'b'"),
])
def test_tlsrpt_invalid(ststest_bin, write, record, col, message):
    path = write(record + "\n", "tlsrpt")
    rc, out, _ = lint(ststest_bin, path)
    assert rc == 65, out
    where = f"{path}:1:{col}" if col else f"{path}:1"
    assert f"{where}: error: {message}\n" in out
    assert out.splitlines()[-1].startswith(f"{path}: invalid _smtp._tls TLSRPT record (")


def test_tlsrpt_invalid_json(ststest_bin):
    rc, out, _ = lint(ststest_bin, "--json", "-", stdin="rua=mailto:a@example.com; v=TLSRPTv1\n")
    assert rc == 65
    doc = json.loads(out)
    assert doc["kind"] == "policy"  # no v= first: not recognised as a record
    rc, out, _ = lint(ststest_bin, "--json", "--tlsrpt", "-",
                      stdin="rua=mailto:a@example.com; v=TLSRPTv1\n")
    assert rc == 65
    doc = json.loads(out)
    assert doc["kind"] == "tlsrpt" and doc["valid"] is False and doc["tlsrpt"] is None
    assert doc["errors"] == [{"line": 1, "column": 1,
                              "message": "record must begin with v=TLSRPTv1"}]


@pytest.mark.parametrize("text,kind,label", [
    (RFC_POLICY, "policy", "MTA-STS policy"),
    ("v=STSv1; id=20160831085700Z;\n", "txt", "_mta-sts TXT record"),
    (RFC_TLSRPT + "\n", "tlsrpt", "_smtp._tls TLSRPT record"),
    ('"v=TLSRPTv1; " "rua=mailto:reports@example.com"\n', "tlsrpt", "_smtp._tls TLSRPT record"),
    ('"v=STSv1; " "id=2024"\n', "txt", "_mta-sts TXT record"),
    ("\n  v=TLSRPTv1; rua=mailto:a@example.com\n", "tlsrpt", "_smtp._tls TLSRPT record"),
])
def test_kind_is_detected(ststest_bin, write, text, kind, label):
    path = write(text, "input")
    rc, out, _ = lint(ststest_bin, "--json", path)
    assert json.loads(out)["kind"] == kind
    rc, out, _ = lint(ststest_bin, path)
    assert f"{path}: valid {label}" in out or f"{path}: invalid {label}" in out, out


@pytest.mark.parametrize("flag,kind", [("--txt", "txt"), ("--tlsrpt", "tlsrpt"),
                                       ("--policy", "policy")])
def test_flag_overrides_detection(ststest_bin, flag, kind):
    for text in (RFC_POLICY, "v=STSv1; id=1;", RFC_TLSRPT):
        rc, out, _ = lint(ststest_bin, "--json", flag, "-", stdin=text)
        doc = json.loads(out)
        assert doc["kind"] == kind
        assert rc == (0 if doc["valid"] else 65)


def test_txt_flag_on_tlsrpt_record_says_so(ststest_bin):
    rc, out, _ = lint(ststest_bin, "--txt", "-", stdin=RFC_TLSRPT)
    assert rc == 65
    assert out.splitlines() == [
        "<stdin>: warning: the input looks like a _smtp._tls TLSRPT record; checked as a "
        "_mta-sts TXT record as --txt asks",
        "<stdin>:1:3: error: unsupported version 'TLSRPTv1' (expected STSv1)",
        "<stdin>: invalid _mta-sts TXT record (1 error, 1 warning)"]


@pytest.mark.parametrize("args", [["--txt", "--tlsrpt"], ["--policy", "--txt"],
                                  ["--tlsrpt", "--policy"]])
def test_kind_flags_exclude_each_other(ststest_bin, args):
    rc, _, err = lint(ststest_bin, *args, "-", stdin=RFC_TLSRPT)
    assert rc == 64
    assert "exclude each other" in err and "usage: ststest lint" in err


def test_mx_host_with_tlsrpt_is_usage(ststest_bin):
    rc, _, err = lint(ststest_bin, "--mx-host", "a.example", "-", stdin=RFC_TLSRPT)
    assert rc == 64
    assert "--mx-host needs a policy file, not a _smtp._tls TLSRPT record" in err
