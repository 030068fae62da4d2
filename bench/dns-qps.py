#!/usr/bin/python3
"""dns-qps.py - queries per second of the fake world's DNS server, side by side
with dnsmasq and unbound serving the same records on this machine.

Runs Debian's /usr/bin/python3 (standard library only). Starts `ststest world
bench/scenario-bench.yaml`, dnsmasq and unbound, each on its own loopback address,
checks with dig that all three give the same answer (rcode and answer section,
TTLs included) to every query of the query mix, then runs dnsperf against each,
one server at a time, with the same query file, duration and -c/-T/-q settings,
after a warm-up. Prints a table (queries/s, average latency, lost queries, server
CPU per query, throttled share, peak RSS, dnsperf's CPU), which side was the limit
for each server, and the ratios ours/dnsmasq, ours/unbound and ours/the faster peer.

One dnsperf thread tops out at about the rate any of the three servers answers with
a whole core, so by default each server runs in a control group capped at 25 % of
one CPU (--server-cpu; cgroup v1 cpu.cfs_quota_us/cfs_period_us, or v2 cpu.max):
the server is then the bottleneck and dnsperf has headroom, and the ratios compare
capacity at equal CPU. A run counts as "server-limited" when the group was
throttled in most periods and dnsperf used clearly less than its core; --check-goal
judges the ratio only when every run was. Every group it made is removed on exit.

Fairness: every server is single-threaded (the world is one libuv loop; dnsmasq is
one process; unbound gets num-threads: 1) and pinned with taskset to CPU 0, and
dnsperf (one thread) to CPU 1, so the load generator never competes with the
server for a core. Servers run one at a time; with --rounds N they are measured
N times in rotation and the median round is reported.

Installs nothing: if dnsperf, dnsmasq, unbound or dig is missing it says to run
scripts/install-bench.sh. Every process it started is stopped and every control
group it made is removed on exit, on Ctrl-C/SIGTERM and on failure.

Exit status: 0 the bench ran (with --check-goal: every run was server-limited and
ours is at least as fast as the faster peer); 1 the servers disagree, a server
failed to start, dnsperf failed, or --check-goal and the measurement is not
conclusive (not every run server-limited); 2 a tool is missing, no usable control
group for --server-cpu, or a usage error; 3 --check-goal and the goal was missed;
130 interrupted.
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


# ---- CPU limit (control groups) ----
#
# One dnsperf thread saturates its core at ~100 k queries/s on this machine, about
# what every server here can answer with a whole core: queries/s would measure the
# generator. So each server runs in a control group capped at --server-cpu percent
# of one CPU (CFS bandwidth control: a quota of CPU time per period); the server is
# then the bottleneck, dnsperf has headroom, and queries/s is the server's capacity
# at that much CPU - the same for all three.

GROUP_PREFIX = "ststest-dns-qps-"
# "Server-limited": throttled in more than this share of the periods it was runnable
# in, and it really got at least CAP_USED of its quota over the run (other work on
# its CPU can keep it below the cap: then it is neither throttled every period nor
# at its capacity, and nr_periods counts only the periods it ran in), while dnsperf
# used less than DNSPERF_BUSY of its core.
THROTTLED_MOST = 0.5
CAP_USED = 0.9
DNSPERF_BUSY = 0.85
# Without a CPU limit, a server using at least this share of its core is saturated.
SERVER_BUSY = 0.90


def _unescape(path):
    """/proc/self/mountinfo writes space, tab, newline and backslash as \ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _read(path):
    with open(path) as f:
        return f.read()


def _write(path, text):
    # One write() per value: cgroup files take exactly one value per write.
    with open(path, "w") as f:
        f.write(text)


def _kv(path):
    """A "key value" per line file (cpu.stat) as {key: int}."""
    out = {}
    for line in _read(path).splitlines():
        f = line.split()
        if len(f) == 2 and f[1].lstrip("-").isdigit():
            out[f[0]] = int(f[1])
    return out


def cgroup_mounts():
    """[(mount point, root inside the hierarchy, fstype, super options)] of the cgroup
    and cgroup2 mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lf, rf = left.split(), right.split()
            if len(lf) >= 5 and len(rf) >= 3 and rf[0] in ("cgroup", "cgroup2"):
                out.append((_unescape(lf[4]), _unescape(lf[3]), rf[0], set(rf[2].split(","))))
    return out


def own_cgroups():
    """{controller or "": our path} from /proc/self/cgroup ("" is the v2 hierarchy)."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            f3 = line.rstrip("\n").split(":", 2)
            if len(f3) == 3:
                for c in f3[1].split(",") if f3[1] else [""]:
                    out[c] = f3[2]
    return out


def parent_candidates(mnt, root, path):
    """Where a group may go: under our own group (a nested limit stays inside any limit
    we run under), then at the top of the mount."""
    out = []
    if path is not None:
        rel = os.path.relpath(path, root) if path.startswith(root) else None
        if rel is not None:
            d = os.path.normpath(os.path.join(mnt, rel))
            if os.path.isdir(d):
                out.append(d)
    if mnt not in out:
        out.append(mnt)
    return out


class CgroupSetup:
    """Which hierarchy caps CPU here: cgroup v1 (a `cpu` mount: cpu.cfs_quota_us,
    cpu.cfs_period_us, cpu.stat; usage from a `cpuacct` mount, which may be the same)
    or cgroup v2 (cpu.max and cpu.stat in a group whose parent enables `cpu`).
    find() raises BenchError(status 2) saying why neither is usable."""

    def __init__(self):
        self.kind = None
        self.cpu_parent = None
        self.acct_parent = None       # v1 only, None when no cpuacct mount
        self.enabled_cpu_in = None    # v2: a subtree_control we wrote "+cpu" to

    def find(self):
        mounts = cgroup_mounts()
        own = own_cgroups()
        why = []
        for mnt, root, fstype, opts in mounts:
            if fstype == "cgroup" and "cpu" in opts:
                for d in parent_candidates(mnt, root, own.get("cpu")):
                    if os.path.exists(os.path.join(d, "cpu.cfs_quota_us")) and os.access(d, os.W_OK):
                        self.kind, self.cpu_parent = "v1", d
                        break
                    why.append("cgroup v1 %s: no cpu.cfs_quota_us or not writable" % d)
                if self.kind:
                    for m2, r2, t2, o2 in mounts:
                        if t2 == "cgroup" and "cpuacct" in o2:
                            for d in parent_candidates(m2, r2, own.get("cpuacct")):
                                if os.path.exists(os.path.join(d, "cpuacct.usage")) and os.access(d, os.W_OK):
                                    self.acct_parent = d
                                    break
                            break
                    return self
        for mnt, root, fstype, opts in mounts:
            if fstype != "cgroup2":
                continue
            for d in parent_candidates(mnt, root, own.get("")):
                try:
                    if "cpu" not in _read(os.path.join(d, "cgroup.controllers")).split():
                        why.append("cgroup v2 %s: the cpu controller is not available there "
                                   "(cgroup.controllers: bound to a v1 hierarchy or not delegated)" % d)
                        continue
                    sub = os.path.join(d, "cgroup.subtree_control")
                    if "cpu" not in _read(sub).split():
                        # A non-root group with processes in it refuses (EBUSY): the
                        # "no internal processes" rule. The top of the mount is exempt.
                        _write(sub, "+cpu")
                        self.enabled_cpu_in = sub
                    self.kind, self.cpu_parent = "v2", d
                    return self
                except OSError as e:
                    why.append("cgroup v2 %s: %s" % (d, e))
        if not mounts:
            why.append("no cgroup or cgroup2 file system is mounted (see /proc/self/mountinfo)")
        raise BenchError("--server-cpu needs a control group with a CPU limit, and none is usable here:\n  " +
                         "\n  ".join(why or ["no cgroup v1 `cpu` mount and no cgroup2 mount"]) +
                         "\nRun as root on a machine with the cpu controller (v1: mounted at "
                         "/sys/fs/cgroup/cpu; v2: listed in cgroup.controllers), or pass "
                         "--server-cpu 0 to measure without a limit (dnsperf is then likely the limit).",
                         status=2)

    def describe(self):
        if self.kind == "v1":
            return "cgroup v1, cpu groups under %s%s" % (
                self.cpu_parent, ", cpuacct under %s" % self.acct_parent if self.acct_parent else "")
        return "cgroup v2, groups under %s" % self.cpu_parent

    def restore(self):
        """Undo our "+cpu" (best effort: it fails while another group still uses cpu)."""
        if self.enabled_cpu_in:
            try:
                _write(self.enabled_cpu_in, "-cpu")
            except OSError as e:
                log("note: could not write -cpu to %s again: %s" % (self.enabled_cpu_in, e))
            self.enabled_cpu_in = None

    def remove_stale(self):
        """Empty groups left by a bench that was SIGKILLed (its pid is gone)."""
        for parent in {self.cpu_parent, self.acct_parent} - {None}:
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for n in names:
                m = re.fullmatch(re.escape(GROUP_PREFIX) + r"(\d+)-.*", n)
                if m and not os.path.exists("/proc/" + m.group(1)):
                    try:
                        os.rmdir(os.path.join(parent, n))
                        log("removed a stale control group %s" % os.path.join(parent, n))
                    except OSError:
                        pass


class CpuGroup:
    """A control group that caps the processes in it at quota_us of CPU time per
    period_us (CFS bandwidth control). remove() takes it away again; a group with a
    live process in it cannot be removed, so stop the server first."""

    def __init__(self, setup, name, quota_us, period_us):
        self.setup = setup
        self.name = GROUP_PREFIX + "%d-%s" % (os.getpid(), name)
        self.quota_us = quota_us
        self.period_us = period_us
        self.dirs = []                 # created, in creation order
        self.cpu_dir = os.path.join(setup.cpu_parent, self.name)
        self.acct_dir = None
        if setup.kind == "v1" and setup.acct_parent:
            self.acct_dir = os.path.join(setup.acct_parent, self.name)

    def create(self):
        """Make the group(s) and set the limit; raises BenchError (status 2)."""
        try:
            for d in (self.cpu_dir, self.acct_dir):
                if d and d not in self.dirs:
                    os.mkdir(d)
                    self.dirs.append(d)
            if self.setup.kind == "v1":
                # The period first: the kernel checks quota against the current period.
                _write(os.path.join(self.cpu_dir, "cpu.cfs_quota_us"), "-1")
                _write(os.path.join(self.cpu_dir, "cpu.cfs_period_us"), str(self.period_us))
                _write(os.path.join(self.cpu_dir, "cpu.cfs_quota_us"), str(self.quota_us))
                got = (int(_read(os.path.join(self.cpu_dir, "cpu.cfs_quota_us"))),
                       int(_read(os.path.join(self.cpu_dir, "cpu.cfs_period_us"))))
            else:
                _write(os.path.join(self.cpu_dir, "cpu.max"), "%d %d" % (self.quota_us, self.period_us))
                q, p = _read(os.path.join(self.cpu_dir, "cpu.max")).split()
                got = (int(q) if q != "max" else -1, int(p))
        except (OSError, ValueError) as e:
            raise BenchError("cannot set up the control group %s (quota %d us per %d us): %s" %
                             (self.cpu_dir, self.quota_us, self.period_us, e), status=2)
        if got != (self.quota_us, self.period_us):
            raise BenchError("control group %s: the kernel kept quota/period %s, not %d/%d" %
                             (self.cpu_dir, got, self.quota_us, self.period_us), status=2)

    def add(self, pid):
        """Move the process, all its threads, into the group (writing cgroup.procs moves
        the whole thread group, in v1 and v2) and check that every thread is there."""
        try:
            for d in self.dirs:
                _write(os.path.join(d, "cgroup.procs"), str(pid))
            threads = "tasks" if self.setup.kind == "v1" else "cgroup.threads"
            inside = set(_read(os.path.join(self.cpu_dir, threads)).split())
            tids = set(os.listdir("/proc/%d/task" % pid))
        except OSError as e:
            raise BenchError("cannot move pid %d into the control group %s: %s" % (pid, self.cpu_dir, e))
        if not tids <= inside:
            raise BenchError("control group %s: threads %s of pid %d are not in it" %
                             (self.cpu_dir, sorted(tids - inside), pid))

    def evict(self, pid):
        """Move the process back to the parent group(s), where it was before add()."""
        try:
            for d in self.dirs:
                _write(os.path.join(os.path.dirname(d), "cgroup.procs"), str(pid))
        except OSError as e:
            raise BenchError("cannot move pid %d out of the control group %s: %s" % (pid, self.cpu_dir, e))

    def stat(self):
        """{periods, throttled, throttled_us, usage_us (None if unknown)}: counters since
        the group was made."""
        st = _kv(os.path.join(self.cpu_dir, "cpu.stat"))
        out = {"periods": st.get("nr_periods", 0), "throttled": st.get("nr_throttled", 0)}
        if self.setup.kind == "v1":
            out["throttled_us"] = st.get("throttled_time", 0) / 1000.0
            out["usage_us"] = None
            if self.acct_dir:
                out["usage_us"] = int(_read(os.path.join(self.acct_dir, "cpuacct.usage"))) / 1000.0
        else:
            out["throttled_us"] = float(st.get("throttled_usec", 0))
            out["usage_us"] = float(st["usage_usec"]) if "usage_usec" in st else None
        return out

    def remove(self):
        """rmdir the group(s). A process still in one (it should have been stopped) is
        moved to the parent first; a dying group may be busy for a moment: retry."""
        for d in reversed(list(self.dirs)):
            for attempt in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    try:
                        for pid in _read(os.path.join(d, "cgroup.procs")).split():
                            _write(os.path.join(os.path.dirname(d), "cgroup.procs"), pid)
                    except OSError:
                        pass
                    if attempt == 49:
                        log("could not remove the control group %s: %s" % (d, e))
                    time.sleep(0.05)
            self.dirs.remove(d)


def parse_server_cpu(text):
    """--server-cpu: a percentage of one CPU, 0 < PCT <= 100, or 0/none for no limit."""
    if text.strip().lower() in ("0", "none", "off"):
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a percentage of one CPU (e.g. 25) or none, got %r" % text)
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError("expected 0 < PCT <= 100 (the server is pinned to one CPU), got %r" % text)
    return v


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

def measure(args, s, qfile, group):
    """Warm up, run dnsperf for args.duration seconds; returns the dnsperf figures plus
    the server's CPU time per query, peak RSS, its control group's counters over the
    measured run (group None: no CPU limit) and which side was the limit."""
    if args.warmup > 0:
        dnsperf(args, s, qfile, args.warmup)
    rss0 = proc_status(s.pid, "VmRSS")
    g0 = group.stat() if group else None
    cpu0 = proc_cpu_seconds(s.pid)
    res = dnsperf(args, s, qfile, args.duration)
    cpu1 = proc_cpu_seconds(s.pid)
    g1 = group.stat() if group else None
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
    res["cpu_limit_pct"] = args.server_cpu or None
    res["cg_quota_us"] = group.quota_us if group else None
    res["cg_period_us"] = group.period_us if group else None
    res["cg_periods"] = res["cg_throttled"] = res["cg_throttled_share"] = None
    res["cg_throttled_ms"] = res["cg_usage_s"] = res["cg_cpu_util"] = res["cg_cap_used"] = None
    if group:
        res["cg_periods"] = g1["periods"] - g0["periods"]
        res["cg_throttled"] = g1["throttled"] - g0["throttled"]
        res["cg_throttled_ms"] = (g1["throttled_us"] - g0["throttled_us"]) / 1000.0
        if res["cg_periods"] > 0:
            res["cg_throttled_share"] = res["cg_throttled"] / res["cg_periods"]
        if g0["usage_us"] is not None and g1["usage_us"] is not None:
            res["cg_usage_s"] = (g1["usage_us"] - g0["usage_us"]) / 1e6
            res["cg_cpu_util"] = res["cg_usage_s"] / res["run_seconds"]
        # The share of its quota it got: the group's usage, else the process's.
        used = res["cg_cpu_util"] if res["cg_cpu_util"] is not None else res["cpu_util"]
        if used is not None:
            res["cg_cap_used"] = used / (group.quota_us / float(group.period_us))
    res["limit"], res["limit_why"] = judge_limit(res)
    check_rcodes(s.name, res)
    return res


def judge_limit(res):
    """("server" | "dnsperf" | "both" | "unclear", the figures behind it). "server":
    the server used up its CPU (throttled in most periods under a limit; without one,
    its core >= SERVER_BUSY busy) while dnsperf stayed clearly below its core."""
    gen = res["dnsperf_cpu_util"]
    if res["cg_quota_us"] is not None:
        thr, cap = res["cg_throttled_share"], res["cg_cap_used"]
        busy = thr is not None and thr > THROTTLED_MOST and cap is not None and cap >= CAP_USED
        why = "throttled %s of %d periods, used %s of its cap, dnsperf %.0f%%" % (
            fmt(thr and thr * 100, ".0f", "?") + "%", res["cg_periods"] or 0,
            fmt(cap and cap * 100, ".0f", "?") + "%", gen * 100)
    else:
        u = res["cpu_util"]
        busy = u is not None and u >= SERVER_BUSY
        why = "no CPU limit, server CPU %s, dnsperf %.0f%%" % (fmt(u and u * 100, ".0f", "?") + "%", gen * 100)
    if gen >= DNSPERF_BUSY:
        return ("both" if busy else "dnsperf"), why
    return ("server" if busy else "unclear"), why


def new_group(args, state, name):
    """A fresh control group for one server run (None without --server-cpu). It is in
    state["groups"] before it exists, so every exit path removes it."""
    if not args.server_cpu:
        return None
    quota = int(round(args.cpu_period_us * args.server_cpu / 100.0))
    g = CpuGroup(state["cgroup"], name, quota, args.cpu_period_us)
    state["groups"].append(g)
    g.create()
    return g


def drop_group(state, group):
    """Remove a group whose server has stopped (a live process keeps it busy)."""
    if group:
        group.remove()
        state["groups"].remove(group)


def run_world(args, tmp, qfile, state):
    s = make_world(args, tmp)
    group = new_group(args, state, s.name)
    state["running"].append(s)
    s.start()
    ready = wait_world_ready(s)
    # Start-up (the throw-away CA, the listeners) runs at full speed; from here on,
    # verification, warm-up and the run are under the limit.
    if group:
        group.add(s.pid)
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
    res = measure(args, s, qfile, group)
    # Stopping (the observed line) is timed at full speed, as before the limit.
    if group:
        group.evict(s.pid)
    s.stop()
    state["running"].remove(s)
    drop_group(state, group)
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
    group = new_group(args, state, s.name)
    state["running"].append(s)
    s.start()
    wait_answering(s)
    if group:
        group.add(s.pid)
    verify([s], state["expected"])
    res = measure(args, s, qfile, group)
    if group:
        group.evict(s.pid)
    s.stop()
    state["running"].remove(s)
    drop_group(state, group)
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


def conclusive(rounds):
    """[why not, ...]: every measured run of every server must have been server-limited
    for the queries/s ratio to compare the servers rather than dnsperf or noise."""
    bad = []
    for name in ("ststest", "dnsmasq", "unbound"):
        for i, r in enumerate(rounds.get(name, [])):
            if r["limit"] != "server":
                bad.append("%s round %d: limit %s (%s)" % (name, i + 1, r["limit"], r["limit_why"]))
    return bad


def print_table(results, ver, args, rounds, cg):
    """Prints the figures; returns (ours / faster peer or None, [why not conclusive])."""
    print("dns-qps: %s, %d s per server after a %d s warm-up, dnsperf -c %d -T 1 -q %d, %s, %d round(s)" %
          (time.strftime("%Y-%m-%d %H:%M %Z"), args.duration, args.warmup, args.clients,
           args.outstanding, "servers on CPU 0, dnsperf on CPU 1" if not args.no_pin else "not pinned",
           args.rounds))
    if args.server_cpu:
        print("  each server limited to %g %% of one CPU (%d us per %d us period; %s)" % (
            args.server_cpu, int(round(args.cpu_period_us * args.server_cpu / 100.0)),
            args.cpu_period_us, cg.describe()))
    else:
        print("  no CPU limit on the servers (--server-cpu 0): dnsperf may be the limit")
    for k in ("ststest", "dnsperf", "dnsmasq", "unbound", "kernel", "cpus", "cpu"):
        print("  %-8s %s" % (k, ver[k]))
    print()
    hdr = "%-8s %10s %8s %8s %6s %8s %8s %8s %6s %6s %9s %7s %9s" % (
        "server", "queries/s", "avg ms", "sd ms", "lost", "cpu us/q", "usr us/q", "sys us/q",
        "cpu %", "thr %", "peak RSS", "threads", "dnsperf %")
    print(hdr)
    print("-" * len(hdr))
    for name in ("ststest", "dnsmasq", "unbound"):
        r = results.get(name)
        if not r:
            continue
        print("%-8s %10.0f %8.3f %8.3f %6d %8s %8s %8s %6s %6s %9s %7s %9s" % (
            name, r["qps"], r["latency_avg_ms"], r["latency_sd_ms"], r["lost"],
            fmt(r["cpu_us_per_q"], ".2f"), fmt(r["usr_us_per_q"], ".2f"),
            fmt(r["sys_us_per_q"], ".2f"), fmt(r["cpu_util"] and r["cpu_util"] * 100, ".0f"),
            fmt(r["cg_throttled_share"] and r["cg_throttled_share"] * 100, ".0f"),
            fmt(r["hwm_kb"] and r["hwm_kb"] / 1024.0, ".1f") + "M", fmt(r["threads"], "d"),
            fmt(r["dnsperf_cpu_util"] * 100, ".0f")))
    print()
    for name in ("ststest", "dnsmasq", "unbound"):
        r = results.get(name)
        if r:
            extra = ""
            if r["cg_usage_s"] is not None:
                extra = "; group CPU %.0f%% of one CPU, throttled %.0f ms" % (
                    r["cg_cpu_util"] * 100, r["cg_throttled_ms"])
            print("%-8s limit: %s (%s%s)" % (name, r["limit"], r["limit_why"], extra))
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
    bad = conclusive(rounds)
    if ours and peers:
        print()
        what = ("queries/s at %g %% of one CPU each" % args.server_cpu if args.server_cpu
                else "queries/s, no CPU limit")
        print("ratios of %s:" % what)
        for n in peers:
            print("ratio ststest / %-8s %6.2f   (CPU per query: %.2f x)" % (
                n, ours["qps"] / results[n]["qps"],
                (ours["cpu_us_per_q"] or 0) / (results[n]["cpu_us_per_q"] or 1)))
        fast = max(peers, key=lambda n: results[n]["qps"])
        ratio = ours["qps"] / results[fast]["qps"]
        if bad:
            verdict = "NOT CONCLUSIVE (not every run was server-limited)"
        else:
            verdict = "met" if ratio >= 1.0 else "NOT met"
        print("ratio ststest / faster peer (%s) %.2f: goal (>= 1.00) %s" % (fast, ratio, verdict))
        return ratio, bad
    return None, bad


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
    ap.add_argument("--server-cpu", type=parse_server_cpu, default=25.0, metavar="PCT",
                    help="cap each server at PCT %% of one CPU in a control group so that the server, "
                         "not dnsperf, is the limit (default 25; 0 or none: no limit)")
    ap.add_argument("--cpu-period-us", type=int, default=10000, metavar="US",
                    help="CFS bandwidth period of that cap in microseconds (default 10000)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--check-goal", action="store_true",
                    help="exit 3 when ststest is slower than the faster peer, 1 when not every "
                         "run was server-limited (not conclusive)")
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
    if not 1000 <= args.cpu_period_us <= 1000000:
        ap.error("--cpu-period-us: the kernel takes 1000 to 1000000")
    if args.server_cpu and args.cpu_period_us * args.server_cpu / 100.0 < 1000:
        ap.error("--server-cpu %g with --cpu-period-us %d gives a quota under 1000 us, which the kernel "
                 "refuses: raise the period" % (args.server_cpu, args.cpu_period_us))

    missing = [t for t in ("dnsperf", "dnsmasq", "unbound", "dig") if not find_tool(t)]
    if not args.no_pin and not find_tool("taskset"):
        missing.append("taskset (util-linux)")
    if missing:
        log("missing: %s. Install them with: sudo sh %s" %
            (", ".join(missing), os.path.join(REPO, "scripts", "install-bench.sh")))
        return 2
    if not os.access(args.bin, os.X_OK):
        log("no ststest binary at %s: build one with\n"
            "  cmake -S %s -B %s/build-bench -DCMAKE_BUILD_TYPE=Release\n"
            "  make -C %s/build-bench -j2 ststest\n"
            "or pass --bin" % (args.bin, REPO, REPO, REPO))
        return 2
    if not args.no_pin and (os.cpu_count() or 1) < 2:
        log("fewer than 2 CPUs: running without pinning")
        args.no_pin = True

    x, y = int(m.group(1)), int(m.group(2))
    state = {"running": [], "groups": [], "cgroup": None,
             "peer_addr": {"dnsmasq": "127.%d.%d.53" % (x, y + 1),
                           "unbound": "127.%d.%d.53" % (x, y + 2)}}
    if args.server_cpu:
        # Before anything starts: a limit that cannot be applied is a usage error (2),
        # found by making (and removing) a probe group with the very settings.
        cg = CgroupSetup()
        try:
            cg.find()
            state["cgroup"] = cg
            cg.remove_stale()
            probe = CpuGroup(cg, "probe", int(round(args.cpu_period_us * args.server_cpu / 100.0)),
                             args.cpu_period_us)
            try:
                probe.create()
            finally:
                probe.remove()
        except BenchError as e:
            log("FAILED: %s" % e)
            cg.restore()
            return e.status
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
        ratio, not_conclusive = print_table(results, ver, args, rounds, state["cgroup"])
        if args.json:
            cg = state["cgroup"]
            with open(args.json, "w") as f:
                json.dump({"versions": ver, "settings": vars(args), "results": results,
                           "rounds": rounds, "ratio_vs_faster_peer": ratio,
                           "cgroup": {"kind": cg.kind, "cpu_parent": cg.cpu_parent,
                                      "cpuacct_parent": cg.acct_parent} if cg else None,
                           "conclusive": not not_conclusive, "not_conclusive": not_conclusive,
                           "thresholds": {"throttled_most": THROTTLED_MOST, "cap_used": CAP_USED,
                                          "dnsperf_busy": DNSPERF_BUSY,
                                          "server_busy": SERVER_BUSY}}, f, indent=2)
        if args.check_goal and ratio is not None:
            if not_conclusive:
                log("--check-goal: the measurement is not conclusive, the queries/s ratio is not "
                    "judged: not every run was server-limited:\n  " + "\n  ".join(not_conclusive))
                status = 1
            elif ratio < 1.0:
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
        # Only once their servers are gone: a group with a live process is busy.
        for g in list(state["groups"]):
            g.remove()
        if state["cgroup"]:
            state["cgroup"].restore()
        shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
