"""A scripted hostile DNS server for the tests under tests/hostile/.

It answers UDP and TCP queries on a loopback address from a table of canned answers,
and can put bytes on the wire that no well-behaved server sends: an RR whose RDATA runs
past its own RDLENGTH (a malformed TXT or MX record), a CNAME loop, a record of any type
with any address (0.0.0.0, ::, multicast ...), a compression pointer that points at
itself, garbage after the question, 1,000 MX records, a TXT record of 60 KiB, the TC bit
on every answer over UDP and TCP alike. Only dnspython parses the queries; the answers
are built here byte by byte, so that they can be wrong on purpose. A UDP answer over
512 octets is sent truncated (TC, no records), as RFC 1035 4.2.1 says, and the whole
answer goes over TCP.

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
import time

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
    """Serves `records` on UDP and TCP at host:port (port 0: a free one) from threads;
    `queries` lists every (name, type, transport) asked, in order. `wire`, when given,
    is a fault on the wire: wire(reply_bytes, qname_end, transport) -> the bytes sent
    (qname_end: the offset just past the question)."""

    def __init__(self, records, host="127.0.0.1", port=0, wire=None):
        self.records = {(n.lower().rstrip("."), t): v for (n, t), v in records.items()}
        self.names = {n for n, _ in self.records}
        self.wire = wire
        self.queries = []
        self.sock, self.tcp = self._bind(host, port)
        self.sock.settimeout(0.1)
        self.addr = "%s:%d" % self.sock.getsockname()
        self.tcp.listen(16)
        self.tcp.settimeout(0.1)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True)
                         for f in (self._serve, self._serve_tcp)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _bind(host, port):
        """A UDP and a TCP socket on one port (a free UDP port may be taken for TCP:
        then another)."""
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((host, port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(udp.getsockname())
                return udp, tcp
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
        raise OSError(f"no port free for both UDP and TCP on {host}")

    @property
    def asked(self):
        """The (name, type) pairs asked, whatever the transport."""
        return [(n, t) for n, t, _ in self.queries]

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

    def answer(self, data, transport="udp"):
        q = dns.message.from_wire(data)
        question = q.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype, transport))
        ans = self._answers(name, rtype, set()) if rtype in QTYPES else []
        rcode = 0 if name in self.names else 3
        # Header: QR, AA, RD copied, RA; the question as asked; the answers as built.
        flags = 0x8480 | (q.flags & 0x0100) | rcode
        qwire = question.name.to_wire() + struct.pack("!HH", question.rdtype, question.rdclass)
        reply = struct.pack("!HHHHHH", q.id, flags, 1, len(ans), 0, 0) + qwire + b"".join(ans)
        if transport == "udp" and len(reply) > 512:
            reply = struct.pack("!HHHHHH", q.id, flags | 0x0200, 1, 0, 0, 0) + qwire
        if self.wire:
            reply = self.wire(reply, 12 + len(qwire), transport)
        return reply

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

    def _serve_tcp(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._tcp_session, args=(conn,), daemon=True).start()

    def _tcp_session(self, conn):
        """Length-prefixed queries, one answer each, until the client closes."""
        conn.settimeout(0.2)
        buf = b""
        deadline = time.monotonic() + 30
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    chunk = conn.recv(4096)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    query, buf = buf[2:2 + n], buf[2 + n:]
                    try:
                        reply = self.answer(query, "tcp")
                    except Exception:  # a query dnspython cannot parse: close
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.sock.close()
        self.tcp.close()


def pointer_loop(reply, qname_end, transport):
    """The answer section replaced by one RR whose owner name is a compression pointer
    to itself (RFC 1035 4.1.4 allows pointers to earlier octets only)."""
    header = bytearray(reply[:12])
    struct.pack_into("!HHHH", header, 4, 1, 1, 0, 0)
    here = qname_end
    rr = struct.pack("!H", 0xC000 | here) + struct.pack("!HHIH", 15, 1, 60, 4) + b"\x00\x0a\xc0\x0c"
    return bytes(header) + reply[12:qname_end] + rr


def garbage_after_question(reply, qname_end, transport):
    """The header announces one answer; what follows the question is 64 octets of 0xff."""
    header = bytearray(reply[:12])
    struct.pack_into("!H", header, 6, 1)
    return bytes(header) + reply[12:qname_end] + b"\xff" * 64


def truncated_always(reply, qname_end, transport):
    """TC set and no records, over UDP and over TCP alike: the answer never comes."""
    header = bytearray(reply[:12])
    struct.pack_into("!H", header, 2, struct.unpack("!H", reply[2:4])[0] | 0x0200)
    struct.pack_into("!HHH", header, 6, 0, 0, 0)
    return bytes(header) + reply[12:qname_end]


WIRE_FAULTS = {"pointer-loop": pointer_loop, "garbage-after-question": garbage_after_question,
               "tc-loop": truncated_always}


def world(fault, mx_address="127.0.0.1"):
    """The records of example.test with one fault:
    cname-loop     mail.example.test is a CNAME of loop.example.test and back again
    txt-malformed  _mta-sts.example.test TXT: a character-string longer than its RR
    mx-malformed   example.test MX: an exchange name that runs past its RR
    mx-mixed       mail.example.test A 0.0.0.0 first, then A mx_address
    policy-zero    an ordinary _mta-sts TXT record; mta-sts.example.test A 0.0.0.0
    policy         an ordinary _mta-sts TXT record; mta-sts.example.test A mx_address
    mx-1000        example.test: 1,000 MX records (mx0000 ... mx0999, each A mx_address)
    txt-60k        _mta-sts.example.test TXT: one record of 240 strings, 60 KiB in all
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
    elif fault == "policy":
        rec[("_mta-sts.example.test", "TXT")] = [("rdata", '"v=STSv1; id=20240101T000000;"')]
        rec[("mta-sts.example.test", "A")] = [("rdata", mx_address)]
        rec[("mta-sts.example.test", "AAAA")] = []
    elif fault == "mx-1000":
        rec[("example.test", "MX")] = [("rdata", f"{i % 50} mx{i:04d}.example.test.")
                                       for i in range(1000)]
        for i in range(1000):
            rec[(f"mx{i:04d}.example.test", "A")] = [("rdata", mx_address)]
            rec[(f"mx{i:04d}.example.test", "AAAA")] = []
    elif fault == "txt-60k":
        first = b"v=STSv1; id=20240101T01;"
        strings = bytes([len(first)]) + first + (b"\xfe" + b"x" * 254) * 239
        rec[("_mta-sts.example.test", "TXT")] = [("raw", strings)]
    elif fault not in ("none", *WIRE_FAULTS):
        raise ValueError("unknown fault %r" % fault)
    return rec


if __name__ == "__main__":
    fault = sys.argv[1] if len(sys.argv) > 1 else "none"
    srv = HostileDns(world(fault), host=sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1",
                     wire=WIRE_FAULTS.get(fault))
    print(srv.addr, flush=True)
    try:
        while True:
            srv._stop.wait(3600)
    except KeyboardInterrupt:
        srv.close()
