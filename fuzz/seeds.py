#!/usr/bin/python3
"""seeds.py - (re)write the seed inputs of fuzz/corpus/<target>/seed-*.

The seeds are the rows of the unit-test tables (tests/unit/test_*.c, read from the C
source: the n-th string literal of every row of a table), the RFC examples, DNS
queries written with dnspython, and the scenario files. Inputs that fuzzing found
are stored next to them under their SHA-1 (see README.md) and are left alone.

Usage: /usr/bin/python3 fuzz/seeds.py   (Debian's Python: it has dnspython)
Exit status 0, or 1 when a table could not be read.
"""
import glob
import hashlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

ESC = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\0"}


def c_string(body):
    """The bytes of a C string literal's body (escapes decoded)."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = body[i + 1]
        if n == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
            out.append(int(m.group(0), 16))
            i += 2 + len(m.group(0))
        elif n in "01234567" and re.match(r"[0-7]{1,3}", body[i + 1:]).group(0) != "0":
            m = re.match(r"[0-7]{1,3}", body[i + 1:])
            out.append(int(m.group(0), 8))
            i += 1 + len(m.group(0))
        else:
            out += ESC[n]
            i += 2
    return bytes(out)


def table_rows(path, table, macros=None):
    """The rows of `static const ... table[] = { ... };` as lists of strings (adjacent
    literals joined, macros replaced by their string)."""
    src = open(path, encoding="utf-8", errors="surrogateescape").read()
    m = re.search(re.escape(table) + r"\[\]\s*=\s*\{", src)
    if not m:
        raise SystemExit("seeds.py: no table %s in %s" % (table, path))
    i, depth, rows, cur, strs, pending = m.end(), 1, [], None, [], None
    tok = re.compile(r'\s+|/\*.*?\*/|//[^\n]*|"((?:[^"\\]|\\.)*)"|[A-Za-z_]\w*|.', re.S)
    while depth:
        t = tok.match(src, i)
        i = t.end()
        s = t.group(0)
        if s.isspace() or s.startswith("/*") or s.startswith("//"):
            continue
        is_str = s.startswith('"')
        is_macro = macros and s in macros
        if is_str or is_macro:
            val = c_string(t.group(1)) if is_str else macros[s]
            pending = (pending or b"") + val
            continue
        if pending is not None:
            strs.append(pending)
            pending = None
        if s == "{":
            depth += 1
            if depth == 2:
                strs = []
        elif s == "}":
            depth -= 1
            if depth == 1:
                rows.append(strs)
        elif s == "(" and depth == 1:
            depth += 1  # a row written as a macro call: OK(name, in, ...)
            strs = []
        elif s == ")" and depth == 2:
            depth -= 1
            rows.append(strs)
    return rows


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def put_all(target, items):
    seen = set()
    for data in items:
        h = hashlib.sha1(data).hexdigest()[:12]
        if h not in seen:
            seen.add(h)
            write(target, h, data)
    return len(seen)


def main():
    unit = os.path.join(ROOT, "tests", "unit")
    counts = {}

    txt = [r[0] for r in table_rows(os.path.join(unit, "test_ststxt.c"), "cases")]
    txt += [b"v=STSv1; id=20160831085700Z;", b"v=spf1 -all\nv=STSv1; id=a;\nv=STSv1; id=b;",
            b"v=STSv1; id=abc;\nnot sts"]
    counts["ststxt"] = put_all("ststxt", txt)

    rpt = [r[0] for r in table_rows(os.path.join(unit, "test_tlsrpt.c"), "cases",
                                    {"V": b"v=TLSRPTv1; ", "MAILTO": b"mailto:a@example.com"})]
    rpt += [b"v=TLSRPTv1;rua=mailto:reports@example.com",
            b"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt",
            b"v=spf1 -all\nv=TLSRPTv1; rua=mailto:a@example.com\nv=TLSRPTv1; rua=https://b.example",
            b"v=TLSRPTv1; rua=mailto:a@example.com\nv=STSv1; id=1;\nnot tlsrpt"]
    counts["tlsrpt"] = put_all("tlsrpt", rpt)

    rua = [r[0] for r in table_rows(os.path.join(unit, "test_rua.c"), "cases")]
    counts["rua"] = put_all("rua", rua)

    good = b"version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"
    pol = [r[1] for r in table_rows(os.path.join(unit, "test_policy.c"), "cases",
                                    {"GOOD_BODY": good})]
    counts["policy"] = put_all("policy", pol)

    mx = [r[0] + b"\n" + r[1] for r in table_rows(os.path.join(unit, "test_policy.c"), "mcases")]
    counts["mx_pattern"] = put_all("mx_pattern", mx)

    rep = [r[1] for r in table_rows(os.path.join(unit, "test_smtpreply.c"), "cases")]
    rep += [b"220 go\r\n250 injected\r\n",
            b"250-mx.example.test\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 PIPELINING\r\n",
            b"250-mx\r\n250-size\r\n250 8BITMIME\r\n",
            b"250 " + b"a" * 1000 + b"\r\n"]
    counts["smtpreply"] = put_all("smtpreply", rep)

    http = [r[1] for r in table_rows(os.path.join(unit, "test_httpsrv.c"), "cases")]
    http += [b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"]
    counts["http_request"] = put_all("http_request", http)

    zone = (b"@          MX   10 mail\n@          MX   20 mail2\n; a comment line\n\n"
            b"_mta-sts   TXT  \"v=STSv1; \" \"id=20240101T000000;\"\n"
            b"multi      TXT  \"a\" \"b\" \"c\"\nmulti      TXT  \"second\"\n"
            b"www        CNAME alias\nalias      CNAME mail\nloop1      CNAME loop2\n"
            b"loop2      CNAME loop1\next        CNAME mail.elsewhere.test.\n"
            b"a.b.c      A    192.0.2.1\nv6         AAAA 2001:db8::1\n")
    zones = [zone, b"@ MX 0 .\n", b"@ MX 10 mx.other.test.\n_mta-sts TXT \"v=STSv1; id=1\"\n",
             b"x 60 IN A 192.0.2.1\n  AAAA 2001:db8::5\n", b"@ SOA ns hm 1 2 3 4 5\n@ NS ns\n"]
    zones += [r[0] for r in table_rows(os.path.join(unit, "test_dnssrv.c"), "zone_errors")]
    counts["zone_lines"] = put_all("zone_lines", zones)

    scn = []
    for p in sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.yaml"))):
        data = open(p, "rb").read()
        if len(data) <= 4096:
            scn.append(data)
    counts["scenario"] = put_all("scenario", scn[:40])

    import dns.flags
    import dns.message
    import dns.rdatatype
    qs = []
    for name, t in [("mail.example.test", "A"), ("example.test", "MX"),
                    ("_mta-sts.example.test", "TXT"), ("multi.example.test", "TXT"),
                    ("www.example.test", "A"), ("loop1.example.test", "A"),
                    ("ext.example.test", "AAAA"), ("nope.example.test", "A"),
                    ("b.c.example.test", "A"), ("example.test", "SOA"), ("example.test", "NS"),
                    ("mail.example.test", "ANY"), ("mx.provider.test", "A"),
                    ("example.org", "A"), ("big.example.test", "TXT"),
                    ("sf.example.test", "TXT"), ("tr.example.test", "TXT"),
                    ("sl.example.test", "A"), ("wi.example.test", "A"),
                    ("ws.example.test", "MX"), ("to.example.test", "AAAA"),
                    ("nx.example.test", "A"), ("rf.example.test", "TXT"),
                    ("example.test", "AXFR"), ("www.example.test", "TYPE65280")]:
        for edns in (-1, 0):
            m = dns.message.make_query(name, t, use_edns=edns, payload=1232)
            m.id = 0x1234
            qs.append(m.to_wire())
    m = dns.message.make_query("big.example.test", "TXT", use_edns=0, payload=4096)
    m.flags |= dns.flags.CD
    qs.append(m.to_wire())
    m = dns.message.make_query("example.test", "MX", use_edns=1, payload=1232)
    qs.append(m.to_wire())
    qs.append(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01")
    qs.append(b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01")
    counts["dns_answer"] = put_all("dns_answer", qs)

    for k, v in sorted(counts.items()):
        print("%-14s %3d seeds" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
