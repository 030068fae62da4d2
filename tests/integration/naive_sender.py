#!/usr/bin/python3
"""A deliberately naive sending MTA for testing `ststest run --sender-cmd`.

It ignores MTA-STS entirely: it looks up the MX through the given DNS server, uses
STARTTLS when offered without verifying anything, and delivers. Exit 0 delivered,
75 on a temporary failure, 69 on a permanent one (sendmail conventions).
Usage: naive_sender.py DNS_HOST DNS_PORT SMTP_PORT RCPT
"""
import smtplib
import ssl
import sys

import dns.resolver


def main():
    dns_host, dns_port, smtp_port, rcpt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    domain = rcpt.rpartition("@")[2]
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [dns_host]
    res.port = dns_port
    mxs = sorted((r.preference, str(r.exchange).rstrip(".")) for r in res.resolve(domain, "MX"))
    for _, host in mxs:
        addr = str(res.resolve(host, "A")[0])
        try:
            with smtplib.SMTP(addr, smtp_port, local_hostname="naive.invalid", timeout=10) as s:
                s.ehlo()
                if s.has_extn("starttls"):
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s.starttls(context=ctx)
                    s.ehlo()
                s.sendmail("naive@naive.invalid", [rcpt], b"Subject: naive\r\n\r\nhello\r\n")
                print(f"delivered to {host}")
                return 0
        except (OSError, smtplib.SMTPException) as e:
            print(f"{host}: {e}")
    return 75


if __name__ == "__main__":
    sys.exit(main())
