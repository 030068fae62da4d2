#!/usr/bin/python3
"""dns-qps.py - queries per second of the fake world's DNS server, side by side
with dnsmasq and unbound serving the same records on this machine.

Runs Debian's /usr/bin/python3 (standard library only). Starts `ststest world
bench/scenario-bench.yaml`, dnsmasq and unbound, each on its own loopback address,
checks with dig that all three give the same answer (rcode and answer section,
TTLs included) to every query of the query mix, then runs dnsperf against each,
one server at a time, with the same query file, duration and -c/-T/-q settings,
after a warm-up. Prints a table (queries/s, average latency, lost queries, server
CPU per query, peak RSS) and the ratios ours/dnsmasq, ours/unbound and ours/the
faster peer.

Fairness: every server is single-threaded (the world is one libuv loop; dnsmasq is
one process; unbound gets num-threads: 1) and pinned with taskset to CPU 0, and
dnsperf (one thread) to CPU 1, so the load generator never competes with the
server for a core. Servers run one at a time; with --rounds N they are measured
N times in rotation and the median round is reported.

Installs nothing: if dnsperf, dnsmasq, unbound or dig is missing it says to run
scripts/install-bench.sh. Every process it started is stopped on exit, on
Ctrl-C and on failure.

Exit status: 0 the bench ran (with --check-goal: and ours is at least as fast as
the faster peer); 1 the servers disagree, a server failed to start, or dnsperf
failed; 2 a tool is missing or a usage error; 3 --check-goal and the goal was
missed.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCENARIO = os.path.join(HERE, "scenario-bench.yaml")
DOMAIN = "bench.test"
TTL = 300

# The records of bench/scenario-bench.yaml as the world serves them. mail and
# mta-sts get their addresses from the world (host .10 and .11 of its block); the
# peers are given the addresses the world's ready line reports.
SOA = "ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 300"
MX = (10, "mail.bench.test.")
TXT = "v=STSv1; id=20240101T000000;"
WWW_A = "192.0.2.80"
WWW_AAAA = "2001:db8::80"

# The query mix (dnsperf's "name type" lines): every record type of the issue,
# one NODATA answer and one NXDOMAIN name. dnsperf cycles through it in order.
QUERIES = [
    ("bench.test", "MX"),
    ("_mta-sts.bench.test", "TXT"),
    ("mail.bench.test", "A"),
    ("mta-sts.bench.test", "A"),
    ("www.bench.test", "A"),
    ("www.bench.test", "AAAA"),
    ("mail.bench.test", "AAAA"),   # NOERROR, no data
    ("nope.bench.test", "A"),      # NXDOMAIN
]


class BenchError(Exception):
    """A failure that ends the bench with exit status 1 (or .status)."""

    def __init__(self, msg, status=1):
        super().__init__(msg)
        self.status = status


def log(msg):
    print("dns-qps: " + msg, file=sys.stderr, flush=True)


def find_tool(name):
    p = shutil.which(name)
    if p:
        return p
    for d in ("/usr/sbin", "/sbin"):
        c = os.path.join(d, name)
        if os.access(c, os.X_OK):
            return c
    return None


# ---- processes ----

class Server:
    """One server process under test: started pinned to a CPU, stopped once."""

    def __init__(self, name, argv, addr, port, cpu, tmp, pin=True):
        self.name = name
        self.addr = addr
        self.port = port
        self.out_path = os.path.join(tmp, name + ".stdout")
        self.err_path = os.path.join(tmp, name + ".stderr")
        if pin:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.argv = argv
        self.proc = None
        self.stop_seconds = None

    def start(self):
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        # A session of its own: a Ctrl-C in the terminal reaches only us, and we stop
        # the servers in order (the world then still prints its observed line).
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.err, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, n=15):
        try:
            with open(self.err_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join("    " + l for l in lines[-n:])
        except OSError:
            return ""

    def stop(self, timeout=60.0):
        """SIGTERM, wait (the world dumps its observer log first), SIGKILL if need be."""
        if self.proc is None or self.proc.poll() is not None:
            return
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("%s did not stop within %.0f s of SIGTERM: killing it" % (self.name, timeout))
            self.proc.kill()
            self.proc.wait()
        self.stop_seconds = time.monotonic() - t0
        self.out.close()
        self.err.close()


def proc_status(pid, key):
    """A kB value from /proc/PID/status (VmHWM, VmRSS), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_seconds(pid):
    """(utime, stime) of the process (all threads), in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        hz = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / hz, int(fields[12]) / hz
    except (OSError, IndexError, ValueError):
        return None


def proc_threads(pid):
    return proc_status(pid, "Threads")


# ---- answers ----

def dig(addr, port, name, qtype):
    """(rcode, sorted answer lines) as dig sees them; raises BenchError."""
    argv = ["dig", "@" + addr, "-p", str(port), "+norec", "+noedns", "+time=2", "+tries=2",
            "+noall", "+comments", "+answer", name, qtype]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
    text = r.stdout.decode("utf-8", "replace")
    m = re.search(r"status: ([A-Z]+)", text)
    if r.returncode != 0 or not m:
        raise BenchError("dig %s %s at %s:%d failed:\n%s" % (name, qtype, addr, port, text))
    answer = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        f = line.split(None, 4)
        if len(f) == 5:
            f[0] = f[0].lower()
            answer.append(" ".join(f[:4]) + " " + " ".join(f[4].split()))
    return m.group(1), sorted(answer)


def expected_answers(hosts):
    """What every server must answer: {(name, type): (rcode, sorted answer lines)}."""
    def rr(owner, t, data):
        return "%s. %d IN %s %s" % (owner, TTL, t, data)
    return {
        ("bench.test", "MX"): ("NOERROR", [rr("bench.test", "MX", "%d %s" % MX)]),
        ("_mta-sts.bench.test", "TXT"): ("NOERROR", [rr("_mta-sts.bench.test", "TXT", '"%s"' % TXT)]),
        ("mail.bench.test", "A"): ("NOERROR", [rr("mail.bench.test", "A", hosts["mail.bench.test"])]),
        ("mta-sts.bench.test", "A"): ("NOERROR", [rr("mta-sts.bench.test", "A", hosts["mta-sts.bench.test"])]),
        ("www.bench.test", "A"): ("NOERROR", [rr("www.bench.test", "A", WWW_A)]),
        ("www.bench.test", "AAAA"): ("NOERROR", [rr("www.bench.test", "AAAA", WWW_AAAA)]),
        ("mail.bench.test", "AAAA"): ("NOERROR", []),
        ("nope.bench.test", "A"): ("NXDOMAIN", []),
    }


def verify(servers, expected):
    """Every server gives the expected answer to every query; raises BenchError listing
    every disagreement."""
    bad = []
    for s in servers:
        for q in QUERIES:
            got = dig(s.addr, s.port, *q)
            if got != expected[q]:
                bad.append("  %-8s %s %s: got %s %s, expected %s %s" %
                           (s.name, q[0], q[1], got[0], got[1], expected[q][0], expected[q][1]))
    if bad:
        raise BenchError("the servers do not give the same answers:\n" + "\n".join(bad))


def wait_answering(s, timeout=10.0):
    """Poll with dig until the server answers (peers print no ready line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not s.alive():
            raise BenchError("%s exited during start-up (status %s):\n%s" %
                             (s.name, s.proc.returncode, s.stderr_tail()))
        r = subprocess.run(["dig", "@" + s.addr, "-p", str(s.port), "+norec", "+time=1",
                            "+tries=1", "+short", DOMAIN, "SOA"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise BenchError("%s did not answer on %s:%d within %.0f s:\n%s" %
                     (s.name, s.addr, s.port, timeout, s.stderr_tail()))


def wait_world_ready(s, timeout=20.0):
    """The world's JSON ready line (DESIGN.md, "world")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(s.out_path, "rb") as f:
            line = f.readline()
        if line.endswith(b"\n"):
            ready = json.loads(line)
            if ready.get("event") != "ready":
                raise BenchError("world: first stdout line is not the ready event: %r" % line[:200])
            return ready
        if not s.alive():
            raise BenchError("world exited during start-up (status %s):\n%s" %
                             (s.proc.returncode, s.stderr_tail()))
        time.sleep(0.05)
    raise BenchError("world printed no ready line within %.0f s:\n%s" % (timeout, s.stderr_tail()))


# ---- the three servers ----

def make_world(args, tmp):
    addr = args.block + ".53"
    argv = [args.bin, "world", "--block", args.block, "--dns-port", str(args.port),
            "--dir", os.path.join(tmp, "world"), SCENARIO]
    os.makedirs(os.path.join(tmp, "world"), exist_ok=True)
    return Server("ststest", argv, addr, args.port, 0, tmp, pin=not args.no_pin)


def make_dnsmasq(args, tmp, addr, hosts):
    argv = [find_tool("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--port", str(args.port),
            "--listen-address", addr, "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--pid-file=", "--log-facility=-",
            # Names under the domain that it has no record for are NXDOMAIN, not
            # "no upstream" (REFUSED); answers carry our TTL (--local-ttl, default 0).
            "--local=/%s/" % DOMAIN, "--local-ttl=%d" % TTL,
            "--mx-host=%s,%s,%d" % (DOMAIN, MX[1].rstrip("."), MX[0]),
            "--txt-record=_mta-sts.%s,%s" % (DOMAIN, TXT),
            "--host-record=mail.%s,%s" % (DOMAIN, hosts["mail.bench.test"]),
            "--host-record=mta-sts.%s,%s" % (DOMAIN, hosts["mta-sts.bench.test"]),
            "--host-record=www.%s,%s,%s" % (DOMAIN, WWW_A, WWW_AAAA)]
    if os.geteuid() == 0:
        # Run as the same user as the other two (it would switch to "nobody").
        argv += ["--user=root", "--group=root"]
    return Server("dnsmasq", argv, addr, args.port, 0, tmp, pin=not args.no_pin)


def make_unbound(args, tmp, addr, hosts):
    d = os.path.join(tmp, "unbound")
    os.makedirs(d, exist_ok=True)
    data = [
        "%s. %d IN SOA %s" % (DOMAIN, TTL, SOA),
        "%s. %d IN NS ns.%s." % (DOMAIN, TTL, DOMAIN),
        "%s. %d IN MX %d %s" % (DOMAIN, TTL, MX[0], MX[1]),
        '_mta-sts.%s. %d IN TXT "%s"' % (DOMAIN, TTL, TXT),
        "mail.%s. %d IN A %s" % (DOMAIN, TTL, hosts["mail.bench.test"]),
        "mta-sts.%s. %d IN A %s" % (DOMAIN, TTL, hosts["mta-sts.bench.test"]),
        "www.%s. %d IN A %s" % (DOMAIN, TTL, WWW_A),
        "www.%s. %d IN AAAA %s" % (DOMAIN, TTL, WWW_AAAA),
    ]
    conf = os.path.join(d, "unbound.conf")
    with open(conf, "w") as f:
        f.write("server:\n")
        for line in [
            "interface: %s@%d" % (addr, args.port), "port: %d" % args.port,
            "do-ip6: no", "do-daemonize: no", 'chroot: ""', 'username: ""',
            'directory: "%s"' % d, 'pidfile: "%s/unbound.pid"' % d,
            "use-syslog: no", 'logfile: ""', "verbosity: 0",
            # One thread, like the other two (the default would be one per core).
            "num-threads: 1",
            # An authoritative-style answerer: no validator, so no trust anchor to read.
            'module-config: "iterator"',
            "access-control: 127.0.0.0/8 allow",
            'local-zone: "%s." static' % DOMAIN,
        # A record with double quotes in it (the TXT) goes in single quotes.
        ] + [("local-data: '%s'" if '"' in r else 'local-data: "%s"') % r for r in data]:
            f.write("    " + line + "\n")
        f.write("remote-control:\n    control-enable: no\n")
    return Server("unbound", [find_tool("unbound"), "-d", "-c", conf], addr, args.port, 0, tmp,
                  pin=not args.no_pin)


# ---- dnsperf ----

def run_child(argv, timeout):
    """Run argv to the end and return (status, stdout+stderr bytes). On any exception
    (timeout, Ctrl-C) the child is killed and reaped before the exception goes on."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except BaseException:
        p.kill()
        p.wait()
        raise


def dnsperf(args, s, qfile, seconds):
    argv = ["dnsperf", "-s", s.addr, "-p", str(s.port), "-d", qfile, "-l", str(seconds),
            "-c", str(args.clients), "-T", "1", "-q", str(args.outstanding), "-t", "2"]
    if not args.no_pin:
        argv = ["taskset", "-c", "1"] + argv
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    status, out = run_child(argv, seconds + 60)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic() - t0
    text = out.decode("utf-8", "replace")
    if status != 0:
        raise BenchError("dnsperf against %s failed (status %d):\n%s" % (s.name, status, text))

    def num(pattern):
        m = re.search(pattern, text)
        if not m:
            raise BenchError("dnsperf output against %s has no '%s':\n%s" % (s.name, pattern, text))
        return float(m.group(1))
    res = {
        "sent": int(num(r"Queries sent:\s+(\d+)")),
        "completed": int(num(r"Queries completed:\s+(\d+)")),
        "lost": int(num(r"Queries lost:\s+(\d+)")),
        "qps": num(r"Queries per second:\s+([\d.]+)"),
        "latency_avg_ms": num(r"Average Latency \(s\):\s+([\d.]+)") * 1000.0,
        "latency_sd_ms": num(r"Latency StdDev \(s\):\s+([\d.]+)") * 1000.0,
        "run_seconds": num(r"Run time \(s\):\s+([\d.]+)"),
    }
    # The load generator's own CPU use over its whole life: near 100 % means dnsperf,
    # not the server, is the limit (the server's figure is then a lower bound).
    res["dnsperf_cpu_util"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
    m = re.search(r"Response codes:\s+(.*)", text)
    res["rcodes"] = dict((k, int(v)) for k, v in re.findall(r"([A-Z]+) (\d+)", m.group(1))) if m else {}
    return res


def check_rcodes(name, res):
    """The mix is 7 NOERROR : 1 NXDOMAIN; anything else (REFUSED, SERVFAIL) means the
    server did not really answer the queries."""
    rc = res["rcodes"]
    other = {k: v for k, v in rc.items() if k not in ("NOERROR", "NXDOMAIN")}
    if other or not rc.get("NXDOMAIN") or res["completed"] == 0:
        raise BenchError("%s answered the bench with unexpected response codes: %s" % (name, rc))
    share = rc["NXDOMAIN"] / res["completed"]
    if abs(share - 1.0 / len(QUERIES)) > 0.02:
        raise BenchError("%s: NXDOMAIN share %.3f, expected %.3f: %s" %
                         (name, share, 1.0 / len(QUERIES), rc))


# ---- one measurement ----

def measure(args, s, qfile):
    """Warm up, run dnsperf for args.duration seconds; returns the dnsperf figures plus
    the server's CPU time per query and peak RSS."""
    if args.warmup > 0:
        dnsperf(args, s, qfile, args.warmup)
    rss0 = proc_status(s.pid, "VmRSS")
    cpu0 = proc_cpu_seconds(s.pid)
    res = dnsperf(args, s, qfile, args.duration)
    cpu1 = proc_cpu_seconds(s.pid)
    res["hwm_kb"] = proc_status(s.pid, "VmHWM")
    res["rss_before_kb"] = rss0
    res["rss_after_kb"] = proc_status(s.pid, "VmRSS")
    res["threads"] = proc_threads(s.pid)
    res["cpu_s"] = res["cpu_us_per_q"] = res["usr_us_per_q"] = res["sys_us_per_q"] = None
    res["cpu_util"] = None
    if cpu0 is not None and cpu1 is not None and res["completed"]:
        usr, sys_ = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        res["cpu_s"] = usr + sys_
        res["usr_us_per_q"] = usr * 1e6 / res["completed"]
        res["sys_us_per_q"] = sys_ * 1e6 / res["completed"]
        res["cpu_us_per_q"] = res["cpu_s"] * 1e6 / res["completed"]
        res["cpu_util"] = res["cpu_s"] / res["run_seconds"]
    check_rcodes(s.name, res)
    return res


def run_world(args, tmp, qfile, state):
    s = make_world(args, tmp)
    state["running"].append(s)
    s.start()
    ready = wait_world_ready(s)
    want = "%s:%d" % (s.addr, s.port)
    if ready.get("dns") != want:
        raise BenchError("world serves DNS on %s, expected %s" % (ready.get("dns"), want))
    hosts = ready.get("hosts", {})
    for h in ("mail.bench.test", "mta-sts.bench.test"):
        if h not in hosts:
            raise BenchError("world's ready line has no address for %s: %s" % (h, hosts))
    state["hosts"] = hosts
    state["expected"] = expected_answers(hosts)
    verify([s], state["expected"])
    res = measure(args, s, qfile)
    s.stop()
    state["running"].remove(s)
    # The world records every query in its observer log and prints it on SIGTERM: a
    # cross-check that it really answered them, and a measure of that cost.
    res["stop_seconds"] = s.stop_seconds
    # DESIGN.md: `world` exits 0 when stopped by a signal; anything else (a crash, a
    # sanitizer report) fails the bench.
    if s.proc.returncode != 0:
        raise BenchError("world exited with status %d after SIGTERM:\n%s" %
                         (s.proc.returncode, s.stderr_tail(40)))
    res["observed_bytes"] = os.path.getsize(s.out_path)
    with open(s.out_path, "rb") as f:
        f.readline()
        observed = json.loads(f.readline() or b"{}")
    if observed.get("event") != "observed":
        raise BenchError("world printed no observed line on SIGTERM:\n%s" % s.stderr_tail())
    # The observer keeps a bounded number of records and counts the rest
    # ("dns_dropped"); both are queries it saw.
    res["observed_dns"] = len(observed.get("dns", [])) + int(observed.get("dns_dropped", 0))
    if res["observed_dns"] < res["completed"]:
        raise BenchError("world observed %d DNS queries but dnsperf completed %d" %
                         (res["observed_dns"], res["completed"]))
    os.unlink(s.out_path)
    return res


def run_peer(args, tmp, qfile, state, which):
    addr = state["peer_addr"][which]
    make = make_dnsmasq if which == "dnsmasq" else make_unbound
    s = make(args, tmp, addr, state["hosts"])
    state["running"].append(s)
    s.start()
    wait_answering(s)
    verify([s], state["expected"])
    res = measure(args, s, qfile)
    s.stop()
    state["running"].remove(s)
    if s.proc.returncode != 0:
        log("note: %s exited with status %d after SIGTERM" % (s.name, s.proc.returncode))
    return res


# ---- output ----

def versions(args):
    def first_line(argv, pattern=None):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        except OSError as e:
            return "? (%s)" % e
        lines = r.stdout.decode("utf-8", "replace").splitlines()
        for l in lines:
            if pattern is None or re.search(pattern, l):
                return l.strip()
        return "?"
    return {
        "ststest": "%s (%s)" % (first_line(["git", "-C", REPO, "describe", "--always", "--dirty"]),
                                args.bin),
        "dnsperf": first_line(["dnsperf", "-h"], r"^Version"),
        "dnsmasq": first_line([find_tool("dnsmasq"), "--version"], r"version"),
        "unbound": first_line([find_tool("unbound"), "-V"], r"^Version"),
        "kernel": os.uname().release,
        "cpus": str(os.cpu_count()),
        "cpu": first_line(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"]).split(":", 1)[-1].strip(),
    }


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def print_table(results, ver, args, rounds):
    print("dns-qps: %s, %d s per server after a %d s warm-up, dnsperf -c %d -T 1 -q %d, %s, %d round(s)" %
          (time.strftime("%Y-%m-%d %H:%M %Z"), args.duration, args.warmup, args.clients,
           args.outstanding, "servers on CPU 0, dnsperf on CPU 1" if not args.no_pin else "not pinned",
           args.rounds))
    for k in ("ststest", "dnsperf", "dnsmasq", "unbound", "kernel", "cpus", "cpu"):
        print("  %-8s %s" % (k, ver[k]))
    print()
    hdr = "%-8s %10s %8s %8s %6s %8s %8s %8s %6s %9s %7s %9s" % (
        "server", "queries/s", "avg ms", "sd ms", "lost", "cpu us/q", "usr us/q", "sys us/q",
        "cpu %", "peak RSS", "threads", "dnsperf %")
    print(hdr)
    print("-" * len(hdr))
    for name in ("ststest", "dnsmasq", "unbound"):
        r = results.get(name)
        if not r:
            continue
        print("%-8s %10.0f %8.3f %8.3f %6d %8s %8s %8s %6s %9s %7s %9s" % (
            name, r["qps"], r["latency_avg_ms"], r["latency_sd_ms"], r["lost"],
            fmt(r["cpu_us_per_q"], ".2f"), fmt(r["usr_us_per_q"], ".2f"),
            fmt(r["sys_us_per_q"], ".2f"), fmt(r["cpu_util"] and r["cpu_util"] * 100, ".0f"),
            fmt(r["hwm_kb"] and r["hwm_kb"] / 1024.0, ".1f") + "M", fmt(r["threads"], "d"),
            fmt(r["dnsperf_cpu_util"] * 100, ".0f")))
    if args.rounds > 1:
        print()
        print("queries/s of every round (the table shows each server's median round):")
        for name in ("ststest", "dnsmasq", "unbound"):
            if name in rounds:
                print("  %-8s %s" % (name, "  ".join("%.0f" % r["qps"] for r in rounds[name])))
    ours = results.get("ststest")
    peers = [n for n in ("dnsmasq", "unbound") if n in results]
    if ours:
        print()
        print("ststest: %d queries observed; stopping (printing the observer log, %.1f MiB) took %.2f s;"
              " RSS %.1f MiB before the run, %.1f MiB after" % (
                  ours["observed_dns"], ours["observed_bytes"] / 1048576.0, ours["stop_seconds"],
                  (ours["rss_before_kb"] or 0) / 1024.0, (ours["rss_after_kb"] or 0) / 1024.0))
    if ours and peers:
        print()
        for n in peers:
            print("ratio ststest / %-8s %6.2f   (CPU per query: %.2f x)" % (
                n, ours["qps"] / results[n]["qps"],
                (ours["cpu_us_per_q"] or 0) / (results[n]["cpu_us_per_q"] or 1)))
        fast = max(peers, key=lambda n: results[n]["qps"])
        ratio = ours["qps"] / results[fast]["qps"]
        print("ratio ststest / faster peer (%s) %.2f: goal (>= 1.00) %s" %
              (fast, ratio, "met" if ratio >= 1.0 else "NOT met"))
        return ratio
    return None


def median_round(rounds):
    """The round with the median queries/s (keeps one run's figures together)."""
    order = sorted(rounds, key=lambda r: r["qps"])
    return order[(len(order) - 1) // 2]


def main():
    ap = argparse.ArgumentParser(description="Queries per second of ststest's DNS server vs dnsmasq and unbound.")
    ap.add_argument("--bin", default=os.environ.get("STSTEST_BIN",
                                                    os.path.join(REPO, "build-bench", "ststest")),
                    help="the ststest binary, a Release build (default: $STSTEST_BIN or build-bench/ststest)")
    ap.add_argument("--block", default="127.250.53",
                    help="the world's 127.X.Y block; dnsmasq and unbound use 127.X.Y+1.53 and 127.X.Y+2.53")
    ap.add_argument("--port", type=int, default=15353, help="DNS port of all three servers (default 15353)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of measured load per server (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warm-up load per server (default 2)")
    ap.add_argument("--clients", type=int, default=4, help="dnsperf -c (default 4)")
    ap.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (default 100)")
    ap.add_argument("--rounds", type=int, default=1, help="measure each server N times in rotation, report the median")
    ap.add_argument("--servers", default="ststest,dnsmasq,unbound", help="comma-separated subset to run")
    ap.add_argument("--no-pin", action="store_true", help="do not pin servers / dnsperf to CPUs with taskset")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--check-goal", action="store_true",
                    help="exit 3 when ststest is slower than the faster peer")
    args = ap.parse_args()

    m = re.fullmatch(r"127\.(\d{1,3})\.(\d{1,3})", args.block)
    if not m or int(m.group(1)) > 255 or int(m.group(2)) > 253:
        ap.error("--block: expected 127.X.Y with X <= 255 and Y <= 253")
    servers = [s for s in args.servers.split(",") if s]
    if not servers or any(s not in ("ststest", "dnsmasq", "unbound") for s in servers):
        ap.error("--servers: a comma-separated subset of ststest,dnsmasq,unbound")
    if "ststest" not in servers:
        ap.error("--servers: ststest is needed (the peers serve the addresses it reports)")
    if args.duration < 1 or args.warmup < 0 or args.rounds < 1 or args.clients < 1 or args.outstanding < 1:
        ap.error("--duration, --rounds, --clients and --outstanding must be positive")

    missing = [t for t in ("dnsperf", "dnsmasq", "unbound", "dig") if not find_tool(t)]
    if not args.no_pin and not find_tool("taskset"):
        missing.append("taskset (util-linux)")
    if missing:
        log("missing: %s. Install them with: sudo sh %s" %
            (", ".join(missing), os.path.join(REPO, "scripts", "install-bench.sh")))
        return 2
    if not os.access(args.bin, os.X_OK):
        log("no ststest binary at %s: build one with\n"
            "  cmake -S %s -B %s/build-bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Wno-error=format-truncation\n"
            "  make -C %s/build-bench -j2 ststest\n"
            "or pass --bin" % (args.bin, REPO, REPO, REPO))
        return 2
    if not args.no_pin and (os.cpu_count() or 1) < 2:
        log("fewer than 2 CPUs: running without pinning")
        args.no_pin = True

    x, y = int(m.group(1)), int(m.group(2))
    state = {"running": [], "peer_addr": {"dnsmasq": "127.%d.%d.53" % (x, y + 1),
                                          "unbound": "127.%d.%d.53" % (x, y + 2)}}
    tmp = tempfile.mkdtemp(prefix="ststest-dns-qps-")

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background
    status = 0
    try:
        with open(os.path.join(tmp, "queries.txt"), "w") as f:
            for name, qtype in QUERIES:
                f.write("%s %s\n" % (name, qtype))
        qfile = f.name
        rounds = {n: [] for n in servers}
        for i in range(args.rounds):
            for n in servers:
                log("round %d/%d: %s" % (i + 1, args.rounds, n))
                if n == "ststest":
                    r = run_world(args, tmp, qfile, state)
                else:
                    r = run_peer(args, tmp, qfile, state, n)
                log("  %s: %.0f queries/s, %d lost" % (n, r["qps"], r["lost"]))
                rounds[n].append(r)
        results = {n: median_round(v) for n, v in rounds.items()}
        ver = versions(args)
        ratio = print_table(results, ver, args, rounds)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"versions": ver, "settings": vars(args), "results": results,
                           "rounds": rounds, "ratio_vs_faster_peer": ratio}, f, indent=2)
        if args.check_goal and ratio is not None and ratio < 1.0:
            status = 3
    except BenchError as e:
        log("FAILED: %s" % e)
        status = e.status
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in list(state["running"]):
            s.stop(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
