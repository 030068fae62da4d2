#!/usr/bin/python3
"""policy-rps.py - requests per second of the fake world's HTTPS policy server
(fakedns/httpsrv.c), side by side with nginx serving the same policy, both under
wrk over HTTPS.

Runs Debian's /usr/bin/python3 (standard library only). Starts `ststest world
SCENARIO` (default scenarios/valid-enforce.yaml) and a private nginx (one worker,
its own prefix, configuration and self-signed P-256 certificate in a temporary
folder, on 127.0.0.1:--nginx-port) serving the policy the world serves, as the
same octets with the same Content-Type. Then, for each round, wrk runs against
each server in turn with the same threads, connections and duration:

  * keep-alive (the default): wrk's connections persist; nginx gets
    keepalive_requests equal to the world's cap (STS_HTTP_KEEPALIVE_MAX, 100), so
    both sides make a new TLS connection every 100 requests;
  * --close: `wrk -H 'Connection: close'`: one request and one full TLS handshake
    per connection (the machine's TLS-handshake ceiling, as bench/send-rate.py
    uses it).

Each server is pinned to CPU 0 and wrk to CPU 1 (--no-pin: not pinned). Prints
requests/s of each (the median of --rounds), wrk's errors, the servers' CPU per
request and peak RSS, and the ratio world / nginx; the issue's goal for
keep-alive is at least 0.5. Every answer must be 200 (wrk's "Non-2xx" count and
socket errors are reported; a server that answered anything else fails the bench).

The world records every request in its observer log (a JSON object each), so its
memory grows with the requests served (reported as peak RSS): keep --duration short.

Exit status: 0 the bench ran; 1 a server failed or answered other than 200; 2 a
tool is missing or a usage error; 130 interrupted. Every process it started is
stopped and the temporary folder removed on every exit path.
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import socket

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
POLICY_PATH = "/.well-known/mta-sts.txt"
KEEPALIVE_MAX = 100  # fakedns/httpsrv.h STS_HTTP_KEEPALIVE_MAX


def _load_dns_qps():
    spec = importlib.util.spec_from_file_location("dns_qps", os.path.join(HERE, "dns-qps.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


qps = _load_dns_qps()
BenchError = qps.BenchError


def log(msg):
    print("policy-rps: " + msg, file=sys.stderr, flush=True)


def fetch_policy(addr, port, host):
    """The policy as the world serves it: (content type, body)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((addr, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" %
                       (POLICY_PATH, host)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200 "):
        raise BenchError("the world's policy host answered %r" % lines[0])
    ctype = "text/plain"
    for l in lines[1:]:
        k, _, v = l.partition(":")
        if k.lower() == "content-type":
            ctype = v.strip()
    return ctype, body


class Nginx:
    """A private nginx on loopback with a self-signed certificate: one worker, its own
    prefix; serves `body` at the policy path (and 404 elsewhere)."""

    def __init__(self, tmp, addr, port, ctype, body, keepalive_requests, pin):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"))
        os.makedirs(os.path.join(self.dir, "html", ".well-known"))
        with open(os.path.join(self.dir, "html", ".well-known", "mta-sts.txt"), "wb") as f:
            f.write(body)
        key, crt = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=mta-sts.example.test", "-addext",
                        "subjectAltName=DNS:mta-sts.example.test"],
                       check=True, capture_output=True)
        self.addr, self.port = addr, port
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    types { }
    default_type "%(ctype)s";
    keepalive_requests %(kr)d;
    keepalive_timeout 5s;
    server {
        listen %(addr)s:%(port)d ssl;
        server_name mta-sts.example.test;
        ssl_certificate %(crt)s;
        ssl_certificate_key %(key)s;
        ssl_session_cache off;
        ssl_session_tickets off;
        root %(d)s/html;
        location = %(path)s { add_header Cache-Control no-store; }
    }
}
""" % {"d": self.dir, "ctype": ctype, "kr": keepalive_requests, "addr": addr, "port": port,
       "crt": crt, "key": key, "path": POLICY_PATH})
        nginx = qps.find_tool("nginx")
        if not nginx:
            raise BenchError("nginx not found: run scripts/install-bench.sh", 2)
        self.server = qps.Server("nginx", [nginx, "-p", self.dir, "-c", conf], addr, port, 0,
                                 tmp, pin=pin)

    def start(self):
        self.server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not self.server.alive():
                raise BenchError("nginx exited at start:\n" + self.server.stderr_tail())
            try:
                socket.create_connection((self.addr, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError("nginx did not listen on %s:%d" % (self.addr, self.port))

    def stop(self):
        self.server.stop()


def parse_wrk(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise BenchError("wrk printed no Requests/sec:\n" + out)
    res = {"rps": float(m.group(1))}
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def run_wrk(args, url, host, pid, close):
    """wrk against url; returns its figures and the server's CPU seconds meanwhile."""
    argv = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
            "%ds" % args.duration, "-H", "Host: " + host]
    if close:
        argv += ["-H", "Connection: close"]
    if not args.no_pin:
        argv = ["taskset", "-c", "1"] + argv
    cpu0 = sum(qps.proc_cpu_seconds(pid) or (0, 0))
    r = subprocess.run(argv + [url], capture_output=True, text=True,
                       timeout=args.duration + 60)
    cpu1 = sum(qps.proc_cpu_seconds(pid) or (0, 0))
    if r.returncode != 0:
        raise BenchError("wrk failed (%d): %s" % (r.returncode, r.stderr or r.stdout))
    res = parse_wrk(r.stdout)
    res["server_cpu_s"] = cpu1 - cpu0
    if res["non2xx"]:
        raise BenchError("%s answered %d requests with other than 2xx/3xx" % (url, res["non2xx"]))
    return res


def measure(args, world_url, nginx_url, host, world_pid, nginx_pid, close):
    """--rounds rounds of wrk against each server in turn; per server the rounds' list."""
    out = {"ststest": [], "nginx": []}
    for i in range(args.rounds):
        for name, url, pid in (("ststest", world_url, world_pid), ("nginx", nginx_url, nginx_pid)):
            res = run_wrk(args, url, host, pid, close)
            log("round %d %s%s: %.0f req/s (%d socket errors)" %
                (i + 1, name, " (Connection: close)" if close else "", res["rps"],
                 res["socket_errors"]))
            out[name].append(res)
    return out


def summary(rounds):
    rps = statistics.median(r["rps"] for r in rounds)
    reqs = sum(r["requests"] or 0 for r in rounds)
    cpu = sum(r["server_cpu_s"] for r in rounds)
    return {"rps": rps, "cpu_us_per_req": 1e6 * cpu / reqs if reqs else None,
            "socket_errors": sum(r["socket_errors"] for r in rounds),
            "per_round": [r["rps"] for r in rounds]}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("STSTEST_BIN") or
                    os.path.join(REPO, "build", "ststest"))
    ap.add_argument("--scenario", default=os.path.join(REPO, "scenarios", "valid-enforce.yaml"))
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c (50)")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t (1)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, median reported (3)")
    ap.add_argument("--nginx-port", type=int, default=18443)
    ap.add_argument("--close", action="store_true",
                    help="wrk -H 'Connection: close': a full handshake per request")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or args.rounds < 1:
        ap.error("--duration, --connections, --threads and --rounds must be at least 1")
    return args


def main():
    args = parse_args()
    for tool in ("wrk", "openssl") + (() if args.no_pin else ("taskset",)):
        if not qps.find_tool(tool):
            log("%s not found: run scripts/install-bench.sh" % tool)
            return 2
    if not os.access(args.bin, os.X_OK):
        log("no ststest binary at %s (--bin, or $STSTEST_BIN)" % args.bin)
        return 2
    tmp = tempfile.mkdtemp(prefix="ststest-policy-rps-")
    world = nginx = None

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        wdir = os.path.join(tmp, "world")
        os.makedirs(wdir)
        world = qps.Server("world", [args.bin, "world", "--dir", wdir, args.scenario], None,
                           None, 0, tmp, pin=not args.no_pin)
        world.start()
        ready = qps.wait_world_ready(world)
        host = next(h for h in ready["hosts"] if h.startswith("mta-sts."))
        waddr, wport = ready["hosts"][host], ready["https_port"]
        ctype, body = fetch_policy(waddr, wport, host)
        nginx = Nginx(tmp, "127.0.0.1", args.nginx_port, ctype, body, KEEPALIVE_MAX,
                      not args.no_pin)
        nginx.start()
        nctype, nbody = fetch_policy("127.0.0.1", args.nginx_port, host)
        if nbody != body:
            raise BenchError("nginx serves other octets than the world: %r" % nbody[:200])
        world_url = "https://%s:%d%s" % (waddr, wport, POLICY_PATH)
        nginx_url = "https://127.0.0.1:%d%s" % (args.nginx_port, POLICY_PATH)
        res = measure(args, world_url, nginx_url, host, world.pid, nginx.server.pid, args.close)
        rss = {"ststest": qps.proc_status(world.pid, "VmHWM"),
               "nginx": qps.proc_status(nginx.server.pid, "VmHWM")}
        world.stop()
        obs = None
        with open(world.out_path, "rb") as f:
            for line in f.read().splitlines()[1:]:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "observed":
                    obs = ev
        if obs is None:
            raise BenchError("the world printed no observed line:\n" + world.stderr_tail())
        served = sum(r["requests"] or 0 for r in res["ststest"]) + 2
        fetches = len(obs["policy_fetches"])
        s_w, s_n = summary(res["ststest"]), summary(res["nginx"])
        s_w["peak_rss"], s_n["peak_rss"] = rss["ststest"], rss["nginx"]
        ratio = s_w["rps"] / s_n["rps"] if s_n["rps"] else None
        kind = "full handshakes (Connection: close)" if args.close else \
            "keep-alive (%d requests per connection at most, both sides)" % KEEPALIVE_MAX
        print("wrk -t%d -c%d -d%ds, %s, %d round(s), medians" %
              (args.threads, args.connections, args.duration, kind, args.rounds))
        print("%-10s %12s %14s %10s %14s" % ("server", "req/s", "CPU us/req", "peak RSS kB",
                                            "socket errors"))
        for name, s in (("ststest", s_w), ("nginx", s_n)):
            print("%-10s %12.0f %14s %10s %14d" % (
                name, s["rps"], "%.1f" % s["cpu_us_per_req"] if s["cpu_us_per_req"] else "-",
                s["peak_rss"] or "-", s["socket_errors"]))
        print("ratio ststest / nginx: %.3f%s" % (ratio, "" if args.close else
                                                 " (goal >= 0.5: %s)" %
                                                 ("met" if ratio >= 0.5 else "NOT met")))
        print("world's observer log: %d policy fetches recorded (wrk counted %d completed, "
              "plus the bench's own)" % (fetches, served))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"ststest": s_w, "nginx": s_n, "ratio": ratio, "close": args.close,
                           "rounds": res}, f, indent=1)
        return 0
    except BenchError as e:
        log(str(e))
        return e.status
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        for s in (nginx, world):
            if s is not None:
                try:
                    s.stop()
                except Exception as e:  # noqa: BLE001 - stop the others anyway
                    log("stopping: %s" % e)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
