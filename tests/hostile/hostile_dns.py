"""A scripted hostile DNS server for the tests under tests/hostile/.

It answers UDP queries on a loopback address from a table of canned answers, and can
put bytes on the wire that no well-behaved server sends: an RR whose RDATA runs past
its own RDLENGTH (a malformed TXT or MX record), a CNAME loop, a record of any type
with any address (0.0.0.0, ::, multicast ...). Only dnspython parses the queries; the
answers are built here byte by byte, so that they can be wrong on purpose.

Records are written as (name, type) -> list of entries; an entry is either
  ("rdata", "text")   zone-file RDATA, turned into wire form by dnspython
  ("raw", b"bytes")   RDATA bytes put on the wire as they are, RDLENGTH = len(bytes)
  ("cname", "target") a CNAME record at that name (the chain is followed in the answer)
A (name, type) without entry answers NODATA; a name that is in no key answers NXDOMAIN.

Run it alone to poke at a sender by hand:
    python3 tests/hostile/hostile_dns.py cname-loop   # prints HOST:PORT, serves until ^C
"""
import socket
import struct
import sys
import threading

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}


def _wire_name(name):
    return dns.name.from_text(name).to_wire()


def _rr(owner, rtype, rdata, ttl=60):
    return _wire_name(owner) + struct.pack("!HHIH", QTYPES[rtype], 1, ttl, len(rdata)) + rdata


def _rdata_wire(rtype, text):
    rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text)
    return rd.to_wire()


class HostileDns:
    """Serves `records` on UDP at host:port (port 0: a free one) from a thread;
    `queries` lists every (name, type) asked, in order."""

    def __init__(self, records, host="127.0.0.1", port=0):
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.names = {n for n, _ in self.records}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.addr = "%s:%d" % self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answers(self, name, rtype, seen):
        """The answer RRs for name/type, following CNAMEs until a name repeats."""
        out = []
        entries = self.records.get((name, rtype))
        cname = self.records.get((name, "CNAME"))
        if entries is None and cname and name not in seen:
            seen.add(name)
            target = cname[0][1]
            out.append(_rr(name, "CNAME", _wire_name(target)))
            out += self._answers(target.lower().rstrip("."), rtype, seen)
            return out
        for kind, value in entries or []:
            out.append(_rr(name, rtype, value if kind == "raw" else _rdata_wire(rtype, value)))
        return out

    def answer(self, data):
        q = dns.message.from_wire(data)
        question = q.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype))
        ans = self._answers(name, rtype, set()) if rtype in QTYPES else []
        rcode = 0 if name in self.names else 3
        # Header: QR, AA, RD copied, RA; the question as asked; the answers as built.
        flags = 0x8480 | (q.flags & 0x0100) | rcode
        qwire = question.name.to_wire() + struct.pack("!HH", question.rdtype, question.rdclass)
        return struct.pack("!HHHHHH", q.id, flags, 1, len(ans), 0, 0) + qwire + b"".join(ans)

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            try:
                self.sock.sendto(self.answer(data), peer)
            except Exception:  # a query dnspython cannot parse gets no answer
                continue

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def world(fault, mx_address="127.0.0.1"):
    """The records of example.test with one fault:
    cname-loop     mail.example.test is a CNAME of loop.example.test and back again
    txt-malformed  _mta-sts.example.test TXT: a character-string longer than its RR
    mx-malformed   example.test MX: an exchange name that runs past its RR
    mx-mixed       mail.example.test A 0.0.0.0 first, then A mx_address
    policy-zero    an ordinary _mta-sts TXT record; mta-sts.example.test A 0.0.0.0
    Otherwise example.test MX 10 mail.example.test, mail A mx_address, no AAAA, no TXT."""
    rec = {
        ("example.test", "MX"): [("rdata", "10 mail.example.test.")],
        ("example.test", "A"): [],
        ("mail.example.test", "A"): [("rdata", mx_address)],
        ("mail.example.test", "AAAA"): [],
        ("_mta-sts.example.test", "TXT"): [],
    }
    if fault == "cname-loop":
        del rec[("mail.example.test", "A")], rec[("mail.example.test", "AAAA")]
        rec[("mail.example.test", "CNAME")] = [("cname", "loop.example.test.")]
        rec[("loop.example.test", "CNAME")] = [("cname", "mail.example.test.")]
    elif fault == "txt-malformed":
        # One character-string announcing 200 bytes in an RR of 12.
        rec[("_mta-sts.example.test", "TXT")] = [("raw", b"\xc8v=STSv1; id")]
    elif fault == "mx-malformed":
        # Preference 10, then a label of 40 bytes in an RR of 8.
        rec[("example.test", "MX")] = [("raw", b"\x00\x0a\x28mail\x00")]
    elif fault == "mx-mixed":
        rec[("mail.example.test", "A")] = [("rdata", "0.0.0.0"), ("rdata", mx_address)]
    elif fault == "policy-zero":
        rec[("_mta-sts.example.test", "TXT")] = [("rdata", '"v=STSv1; id=20240101T000000;"')]
        rec[("mta-sts.example.test", "A")] = [("rdata", "0.0.0.0")]
        rec[("mta-sts.example.test", "AAAA")] = []
    elif fault != "none":
        raise ValueError("unknown fault %r" % fault)
    return rec


if __name__ == "__main__":
    srv = HostileDns(world(sys.argv[1] if len(sys.argv) > 1 else "none"),
                     host=sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1")
    print(srv.addr, flush=True)
    try:
        while True:
            srv._stop.wait(3600)
    except KeyboardInterrupt:
        srv.close()
