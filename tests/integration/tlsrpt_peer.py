"""A small, independent TLSRPT delivery (RFC 8460 5) for `ststest run --report-cmd`:
another implementation's report command as the runner drives it, written with Python's
standard library, dnspython and dkimpy only (no ststest code).

    tlsrpt_peer.py --dns HOST:PORT --ca FILE --smtp-port N --domain D --day YYYY-MM-DD
        --submitter S --dkim-key FILE --dkim-selector SEL --successful N --failed N
        [--result-type T] [--argv-file FILE] [--careless] [--strict-tls]

It looks up _smtp._tls.D TXT through --dns (exactly one v=TLSRPTv1 record, else nothing
is sent and it exits 0), builds one aggregate report for the day with the counts given
(it has no report store: the test says what the day held), and sends it to every rua:
https by a POST (application/tlsrpt+gzip, the certificate checked against --ca), mailto
as a DKIM-signed multipart/report message to the address's MX. Exit 0 when everything
was delivered, 75 when any rua failed. --argv-file writes its arguments (as JSON) there,
so that a test can see the placeholders the runner gave it. --careless makes it a wrong
implementation on purpose: it takes any record that starts with "v=TLSRPT" and the first
of several, so that the tests can show the library's no-report cases fail it.
--strict-tls is wrong the other way: it sends a mailed report only over STARTTLS with a
verified certificate (RFC 8460 5.3 says reports are delivered despite TLS failures).
"""
import argparse
import base64
import email.utils
import gzip
import http.client
import json
import smtplib
import ssl
import sys

import dkim
import dns.message
import dns.query
import dns.rdatatype


def query(server, port, name, rdtype):
    q = dns.message.make_query(name, rdtype)
    r = dns.query.udp(q, server, port=port, timeout=5)
    return [rr for rrset in r.answer for rr in rrset if rr.rdtype == dns.rdatatype.from_text(rdtype)]


def report(a):
    start = f"{a.day}T00:00:00Z"
    end = f"{a.day}T23:59:59Z"
    policy = {"policy": {"policy-type": "sts", "policy-domain": a.domain,
                         "policy-string": ["version: STSv1", "mode: enforce"],
                         "mx-host": [f"mail.{a.domain}"]},
              "summary": {"total-successful-session-count": a.successful,
                          "total-failure-session-count": a.failed}}
    if a.failed:
        policy["failure-details"] = [{"result-type": a.result_type,
                                      "sending-mta-ip": "127.0.0.1",
                                      "receiving-mx-hostname": f"mail.{a.domain}",
                                      "failed-session-count": a.failed}]
    rid = f"{a.day}.{a.domain}@{a.submitter}"
    return rid, {"organization-name": a.submitter, "date-range": {"start-datetime": start,
                                                                  "end-datetime": end},
                 "contact-info": f"postmaster@{a.submitter}", "report-id": rid,
                 "policies": [policy]}


def post(a, server, port, url, body):
    rest = url[len("https://"):]
    hostport, _, path = rest.partition("/")
    host, _, p = hostport.partition(":")
    addr = query(server, port, host, "A")[0].address
    ctx = ssl.create_default_context(cafile=a.ca)
    conn = http.client.HTTPSConnection(addr, int(p or 443), timeout=10, context=ctx)
    # SNI and the certificate check are for the host, the connection for its address.
    conn.sock = ctx.wrap_socket(__import__("socket").create_connection((addr, int(p or 443)), 10),
                                server_hostname=host)
    conn.request("POST", "/" + path, body, {"Content-Type": "application/tlsrpt+gzip",
                                            "Host": hostport})
    status = conn.getresponse().status
    conn.close()
    return 200 <= status < 300


def mail(a, server, port, addr, rid, body):
    domain = addr.rpartition("@")[2]
    mx = sorted(query(server, port, domain, "MX"), key=lambda r: r.preference)
    host = str(mx[0].exchange).rstrip(".") if mx else domain
    ip = query(server, port, host, "A")[0].address
    name = f"{a.submitter}!{a.domain}!0!0.json.gz"
    att = base64.encodebytes(body).decode().replace("\n", "\r\n")
    msg = (f"From: postmaster@{a.submitter}\r\nTo: {addr}\r\n"
           f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{rid}>\r\n"
           f"Subject: Report Domain: {a.domain} Submitter: {a.submitter} Report-ID: <{rid}>\r\n"
           f"TLS-Report-Domain: {a.domain}\r\nTLS-Report-Submitter: {a.submitter}\r\n"
           "MIME-Version: 1.0\r\n"
           'Content-Type: multipart/report; report-type="tlsrpt"; boundary="x"\r\n\r\n'
           "--x\r\nContent-Type: text/plain\r\n\r\nTLS report.\r\n"
           "--x\r\nContent-Type: application/tlsrpt+gzip\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           f'Content-Disposition: attachment; filename="{name}"\r\n\r\n{att}--x--\r\n').encode()
    sig = dkim.sign(msg, a.dkim_selector.encode(), a.submitter.encode(),
                    open(a.dkim_key, "rb").read(), canonicalize=(b"relaxed", b"relaxed"))
    with smtplib.SMTP(ip, a.smtp_port, local_hostname=a.submitter, timeout=10) as s:
        if a.strict_tls:
            ctx = ssl.create_default_context(cafile=a.ca)
            s._host = host  # the name the certificate must carry
            s.starttls(context=ctx)
        s.sendmail(f"postmaster@{a.submitter}", [addr], sig + msg)
    return True


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--dns", "--ca", "--domain", "--day", "--submitter", "--dkim-key",
                "--dkim-selector", "--argv-file"):
        ap.add_argument(opt)
    ap.add_argument("--smtp-port", type=int)
    ap.add_argument("--successful", type=int, default=0)
    ap.add_argument("--failed", type=int, default=0)
    ap.add_argument("--result-type", default="certificate-expired")
    ap.add_argument("--careless", action="store_true")
    ap.add_argument("--strict-tls", action="store_true")
    a = ap.parse_args()
    if a.argv_file:
        with open(a.argv_file, "w") as f:
            json.dump(sys.argv[1:], f)
    server, _, port = a.dns.rpartition(":")
    txt = ["".join(s.decode() for s in rr.strings)
           for rr in query(server, int(port), f"_smtp._tls.{a.domain}", "TXT")]
    recs = [t for t in txt if t.startswith("v=TLSRPT" if a.careless else "v=TLSRPTv1;")]
    if a.careless:
        recs = recs[:1]
    if len(recs) != 1:
        print(f"tlsrpt_peer: {len(recs)} TLSRPT records: nothing sent", file=sys.stderr)
        return 0
    ruas = [u.strip() for u in recs[0].split("rua=", 1)[1].split(";")[0].split(",")]
    rid, rep = report(a)
    body = gzip.compress(json.dumps(rep).encode())
    failed = 0
    for u in ruas:
        try:
            ok = (post(a, server, int(port), u, body) if u.startswith("https://")
                  else mail(a, server, int(port), u[len("mailto:"):], rid, body))
        except Exception as e:  # a failed rua: name it, defer
            print(f"tlsrpt_peer: {u}: {e}", file=sys.stderr)
            ok = False
        print(f"tlsrpt_peer: {u}: {'delivered' if ok else 'deferred'}", file=sys.stderr)
        failed += not ok
    return 75 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
