#!/usr/bin/python3
"""A deliberately naive sending MTA for testing `ststest run --sender-cmd`.

It ignores MTA-STS entirely: it looks up the MX through the given DNS server, uses
STARTTLS when offered without verifying anything, and delivers. Exit 0 delivered,
75 on a temporary failure, 69 on a permanent one (sendmail conventions).
Usage: naive_sender.py [--first-answer] DNS_HOST DNS_PORT SMTP_PORT RCPT

--first-answer: resolve like a careless stub resolver that checks the message ID
but takes the first answer from any address and port (an unconnected socket), as
RFC 5452 9.1 says a resolver must not.
"""
import socket
import smtplib
import ssl
import sys

import dns.exception
import dns.message
import dns.resolver


class FirstAnswerResolver:
    """Takes the first UDP answer whose ID matches, from whoever sent it."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def resolve(self, name, rdtype):
        q = dns.message.make_query(name, rdtype)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(q.to_wire(), (self.host, self.port))
            while True:
                data, _src = s.recvfrom(65535)
                r = dns.message.from_wire(data)
                if r.id == q.id:
                    break
        rrsets = [a for a in r.answer if a.rdtype == dns.rdatatype.from_text(rdtype)]
        if not rrsets:
            raise OSError(f"{name} {rdtype}: no answer (rcode {dns.rcode.to_text(r.rcode())})")
        return list(rrsets[0])


def main():
    args = sys.argv[1:]
    first_answer = args[:1] == ["--first-answer"]
    if first_answer:
        args = args[1:]
    dns_host, dns_port, smtp_port, rcpt = args[0], int(args[1]), int(args[2]), args[3]
    domain = rcpt.rpartition("@")[2]
    if first_answer:
        res = FirstAnswerResolver(dns_host, dns_port)
    else:
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [dns_host]
        res.port = dns_port
    mxs = sorted((r.preference, str(r.exchange).rstrip(".")) for r in res.resolve(domain, "MX"))
    for _, host in mxs:
        try:
            addr = str(res.resolve(host, "A")[0])
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
        except (OSError, smtplib.SMTPException, dns.exception.DNSException) as e:
            print(f"{host}: {e}")
    return 75


if __name__ == "__main__":
    sys.exit(main())
