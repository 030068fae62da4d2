#!/usr/bin/python3
"""A deliberately wrong MTA-STS sender, to prove the scenario library has no blind spots
(docs/blind-spot-audit.md).

It applies whatever the policy host serves, whatever RFC 8461 says about it: it fetches
the policy even when the _mta-sts TXT record is missing, invalid, doubled or cannot be
looked up (3.1); it accepts any HTTPS certificate of the policy host, any status code,
any Content-Type, a redirect's own body, a body of any size or cut short, and a policy
without max_age (3.2, 3.3). Everything else it does right: under an enforce policy it
delivers only to an MX the policy names, over STARTTLS; otherwise it delivers with
opportunistic STARTTLS (certificates are not checked, as a sender without a usable
policy does not check them either).

So every "this policy must be rejected" scenario of the library must FAIL with it: the
policy it should have ignored names only an MX that does not exist, and applying it
defers the message that a correct sender delivers.

Usage: careless_sts_sender.py DNS_HOST DNS_PORT SMTP_PORT HTTPS_PORT RCPT
Exit 0 delivered, 75 deferred (sendmail conventions).
"""
import smtplib
import socket
import ssl
import sys

import dns.exception
import dns.resolver


def resolver(host, port):
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [host]
    res.port = port
    res.lifetime = 3
    return res


def address(res, host):
    return str(res.resolve(host, "A")[0])


def fetch_anything(res, domain, https_port):
    """The policy host's answer body, whatever it is (b"" when nothing came)."""
    host = f"mta-sts.{domain}"
    try:
        addr = address(res, host)
    except dns.exception.DNSException as e:
        print(f"policy host {host}: {e}", file=sys.stderr)
        return b""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = b""
    try:
        with socket.create_connection((addr, https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                          "Connection: close\r\n\r\n".encode())
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
    except (OSError, ssl.SSLError) as e:
        print(f"policy fetch: {e} (using what arrived: {len(data)} octets)", file=sys.stderr)
    head, _, body = data.partition(b"\r\n\r\n")
    print(f"policy answer: {head.splitlines()[:1]} {len(body)} body octets", file=sys.stderr)
    return body


def parse_anything(body):
    """mode and mx lines of whatever came, chunk framing and all ignored."""
    mode, mx = None, []
    for line in body.decode("latin-1").replace("\r", "").split("\n"):
        key, _, value = line.partition(":")
        if key.strip() == "mode":
            mode = value.strip()
        elif key.strip() == "mx":
            mx.append(value.strip().lower())
    return mode, mx


def allowed(mx_list, host):
    for pat in mx_list:
        if pat == host or (pat.startswith("*.") and host.split(".", 1)[-1] == pat[2:]):
            return True
    return False


def main():
    dns_host, dns_port, smtp_port, https_port, rcpt = sys.argv[1:6]
    domain = rcpt.rpartition("@")[2]
    res = resolver(dns_host, int(dns_port))
    try:
        print(f"TXT: {[r.to_text() for r in res.resolve('_mta-sts.' + domain, 'TXT')]}",
              file=sys.stderr)
    except dns.exception.DNSException as e:
        print(f"TXT: {e} (fetching anyway)", file=sys.stderr)
    mode, mx_list = parse_anything(fetch_anything(res, domain, int(https_port)))
    print(f"applying mode={mode} mx={mx_list}", file=sys.stderr)
    mxs = sorted((r.preference, str(r.exchange).rstrip(".").lower())
                 for r in res.resolve(domain, "MX"))
    for _, host in mxs:
        if mode == "enforce" and not allowed(mx_list, host):
            print(f"{host}: not in the policy, skipped", file=sys.stderr)
            continue
        try:
            with smtplib.SMTP(address(res, host), int(smtp_port), local_hostname="careless.invalid",
                              timeout=10) as s:
                s.ehlo()
                if s.has_extn("starttls"):
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s.starttls(context=ctx)
                    s.ehlo()
                elif mode == "enforce":
                    print(f"{host}: no STARTTLS under enforce, skipped", file=sys.stderr)
                    continue
                s.sendmail("careless@careless.invalid", [rcpt],
                           b"Subject: careless\r\n\r\nhello\r\n")
                print(f"delivered to {host}")
                return 0
        except (OSError, smtplib.SMTPException, dns.exception.DNSException) as e:
            print(f"{host}: {e}", file=sys.stderr)
    print("deferred", file=sys.stderr)
    return 75


if __name__ == "__main__":
    sys.exit(main())
