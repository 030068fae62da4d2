#!/usr/bin/python3
"""send-rate.py - messages per second of `ststest send` through a fake world,
side by side with `openssl s_client -starttls smtp` doing the same SMTP
transaction to the same world MX.

Runs Debian's /usr/bin/python3 (standard library only). Starts `ststest world
SCENARIO` (default scenarios/valid-enforce.yaml), reads its ready line, and then,
for each round, in this order:

  * `ststest send --no-cache --concurrency C` with N recipients u1..uN@<domain>
    (one message and one SMTP session per recipient, with discovery: DNS, the
    policy fetch, MX lookup, STARTTLS and certificate checks), for each C of
    --concurrency (default 1, 8, 100); send resumes TLS sessions verified earlier in
    the run, so once more at the largest C with --no-tls-resume, a full handshake
    for every session (what the wrk -> nginx ceiling below makes);
  * the peer: --peer-workers (default 8) loops side by side, each running
    `openssl s_client -starttls smtp` once per message for its share of the same
    N recipients: STARTTLS, certificate and name verified against the world's CA,
    EHLO, MAIL, RCPT, DATA, the same message, QUIT;
  * swaks: --swaks-workers (default 8) loops of `swaks --tls --tls-verify` the
    same way (swaks 20201014 checks the chain, not the name);
  * the survey world (--survey-domains D, default 100: a second world started
    with `world --domains D`): `ststest send` at each of --survey-concurrency
    (default 8,100) with the same N recipients spread over d1..dD;
  * the machine's TLS ceiling: wrk -> a private nginx on loopback with a P-256
    test certificate and `wrk -H 'Connection: close'` (bench/policy-rps.py's
    nginx), one full handshake per request, for --ceiling-seconds (default 5).

Once, after the rounds (each can be turned off):

  * --big 10000,1000: 10,000 recipients at concurrency 1000 through the first
    world with --json: peak RSS, msg/s, and every result judged under its policy
    (delivered, policy fetched, mode enforce, TLS required and verified); the
    world's dns_drops must stay 0;
  * --postfix (root only, Postfix installed): `ststest send -c 8` of N messages
    into a private Postfix (tests/integration/postfix_fixture.py: openssl CA,
    loopback only, delivery to a Maildir), DNS from a third world;
  * --policy-rps: bench/policy-rps.py --rounds 1 (the world's policy server
    against nginx keep-alive, under wrk);
  * --library: `ststest run scenarios/` at the default -j, its wall time.

It prints msg/s, CPU per message of each side (client: RUSAGE_CHILDREN; world:
/proc/PID/stat), peak RSS of each ststest run (GNU time), RSS per in-flight
delivery ((peak at the largest concurrency - peak at 8) / the difference), and
every ratio of the issue's goals.

Every run is timed from start to exit (wall clock); msg/s = N / wall time. The
figures of each configuration are the median over --rounds (default 3), and the
ratio is ours / the peer. Each run must deliver all N messages (send exits 0; every
s_client transaction got its 250 to the message), and at the end the world's
observer log must hold exactly as many received messages as were sent.

A figure to look at, not a test: nothing is asserted about speed.

Exit status: 0 the bench ran; 1 a run did not deliver every message, the world
failed, or the counts disagree; 2 a tool is missing or a usage error; 130
interrupted. The world is stopped and the temporary directory removed on every
exit path.
"""

import argparse
import concurrent.futures
import runpy
import types
import importlib.util
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FROM = "bench@bench.invalid"
HELO = "bench.invalid"

# The message both senders send (LF here: ststest sends CRLF, s_client -crlf too).
# No line starts with a dot, so neither side has to stuff one.
MESSAGE = (
    "From: <bench@bench.invalid>\n"
    "To: <postmaster@example.test>\n"
    "Subject: ststest send-rate bench\n"
    "Message-ID: <send-rate@bench.invalid>\n"
    "\n"
    "One test message of the send-rate bench.\n"
    "It is the same for ststest send and for openssl s_client.\n"
)


def _load_dns_qps():
    """bench/dns-qps.py as a module: its world process helpers (Server,
    wait_world_ready, BenchError) serve this bench too."""
    spec = importlib.util.spec_from_file_location("dns_qps", os.path.join(HERE, "dns-qps.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


qps = _load_dns_qps()
BenchError = qps.BenchError
TIME = "/usr/bin/time"  # GNU time: the peak RSS of one process


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def world_cpu_seconds(world):
    """utime + stime of the world so far (10 ms ticks)."""
    cpu = qps.proc_cpu_seconds(world.pid)
    if cpu is None:
        raise BenchError("the world exited:\n%s" % world.stderr_tail())
    return sum(cpu)


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def start_world(args, tmp, name="world", extra=(), scenario=None):
    wdir = os.path.join(tmp, name)
    os.makedirs(wdir)
    world = qps.Server(name, [args.bin, "world", "--dir", wdir, *extra, scenario or args.scenario],
                       None, None, 0, tmp, pin=False)
    world.start()
    return world, qps.wait_world_ready(world)


def observed_line(world):
    """The world's observed line (printed on SIGTERM), or None."""
    with open(world.out_path, "rb") as f:
        for line in f.read().splitlines()[1:]:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "observed":
                return ev
    return None


def mx_host(ready):
    """The MX host of the world (the first host that is not the policy host)."""
    for name, addr in ready["hosts"].items():
        if not name.startswith("mta-sts."):
            return name, addr
    raise BenchError("the world's ready line names no MX host: %s" % ready["hosts"])


def full_name(args):
    return "ststest send -c %d --no-tls-resume" % max(args.concs)


def run_ours(args, ready, msgfile, rcpts, concurrency, out=None, ca_file=None, smtp_port=None,
             rss=None, extra=()):
    """One `ststest send` (under GNU time when there is one: rss["kib"] gets the peak);
    stdout to out (a file name) or nowhere. Returns (wall, client CPU seconds)."""
    argv = [args.bin, "send", "--dns", ready["dns"], "--ca-file", ca_file or ready["ca_file"],
            "--smtp-port", str(smtp_port or ready["smtp_port"]),
            "--https-port", str(ready["https_port"]),
            "--no-cache", "--concurrency", str(concurrency), "--from", FROM, "--helo", HELO,
            "--data", msgfile] + list(extra) + (["--json"] if out else []) + rcpts
    rss_file = None
    if os.access(TIME, os.X_OK):
        rss_file = msgfile + ".rss"
        argv = [TIME, "-f", "%M", "-o", rss_file] + argv
    cpu0 = children_cpu_seconds()
    t0 = time.monotonic()
    with open(out or os.devnull, "wb") as so:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=subprocess.PIPE,
                           timeout=args.time_limit)
    wall = time.monotonic() - t0
    cpu = children_cpu_seconds() - cpu0
    if r.returncode != 0:
        tail = "\n".join(r.stderr.decode("utf-8", "replace").splitlines()[-15:])
        raise BenchError("ststest send --concurrency %d exited %d (not all delivered):\n%s" %
                         (concurrency, r.returncode, tail))
    if rss is not None and rss_file:
        with open(rss_file) as f:
            rss["kib"] = int(f.read().split()[-1])
    return wall, cpu


def peer_transaction(args, ready, host, addr, rcpt):
    """One SMTP transaction with openssl s_client; returns its CPU seconds."""
    argv = ["openssl", "s_client", "-starttls", "smtp", "-connect",
            "%s:%d" % (addr, ready["smtp_port"]), "-servername", host,
            "-verify_hostname", host, "-verify_return_error", "-CAfile", ready["ca_file"],
            "-crlf", "-quiet", "-ign_eof"]
    text = ("EHLO %s\nMAIL FROM:<%s>\nRCPT TO:<%s>\nDATA\n%s.\nQUIT\n" %
            (HELO, FROM, rcpt, MESSAGE))
    r = subprocess.run(argv, input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=args.time_limit)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0 or "250 2.0.0 Ok: queued" not in out:
        raise BenchError("openssl s_client to %s for %s: exit %d, no 250 to the message:\n%s\n%s" %
                         (host, rcpt, r.returncode, out[-800:],
                          r.stderr.decode("utf-8", "replace")[-800:]))


def run_peer(args, ready, rcpts):
    host, addr = mx_host(ready)
    shares = [rcpts[i::args.peer_workers] for i in range(args.peer_workers)]

    def worker(share):
        for rcpt in share:
            peer_transaction(args, ready, host, addr, rcpt)

    cpu0 = children_cpu_seconds()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.peer_workers) as pool:
        for f in [pool.submit(worker, s) for s in shares if s]:
            f.result()
    wall = time.monotonic() - t0
    return wall, children_cpu_seconds() - cpu0


def swaks_transaction(args, ready, addr, msgfile, rcpt):
    argv = ["swaks", "--server", addr, "--port", str(ready["smtp_port"]), "--to", rcpt,
            "--from", FROM, "--helo", HELO, "--tls", "--tls-verify", "--tls-ca-path",
            ready["ca_file"], "--data", "@" + msgfile, "--silent", "2"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=args.time_limit)
    if r.returncode != 0:
        raise BenchError("swaks to %s for %s: exit %d:\n%s\n%s" %
                         (addr, rcpt, r.returncode, r.stdout.decode("utf-8", "replace")[-800:],
                          r.stderr.decode("utf-8", "replace")[-800:]))


def run_swaks(args, ready, msgfile, rcpts):
    host, addr = mx_host(ready)
    shares = [rcpts[i::args.swaks_workers] for i in range(args.swaks_workers)]

    def worker(share):
        for rcpt in share:
            swaks_transaction(args, ready, addr, msgfile, rcpt)

    cpu0 = children_cpu_seconds()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.swaks_workers) as pool:
        for f in [pool.submit(worker, s) for s in shares if s]:
            f.result()
    return time.monotonic() - t0, children_cpu_seconds() - cpu0


def policy_rps_module():
    """bench/policy-rps.py's helpers (its private nginx, wrk)."""
    return types.SimpleNamespace(**runpy.run_path(os.path.join(HERE, "policy-rps.py")))


def run_ceiling(args, nginx, prps):
    """wrk -H 'Connection: close' at the private nginx: (handshakes/s, nginx CPU us per
    handshake)."""
    wargs = types.SimpleNamespace(threads=1, connections=50, duration=args.ceiling_seconds,
                                  no_pin=True)
    url = "https://127.0.0.1:%d%s" % (args.nginx_port, prps.POLICY_PATH)
    res = prps.run_wrk(wargs, url, "mta-sts.example.test", nginx.server.pid, True)
    if res["socket_errors"]:
        log("wrk -> nginx: %d socket errors" % res["socket_errors"])
    cpu_us = 1e6 * res["server_cpu_s"] / res["requests"] if res["requests"] else None
    return res["rps"], cpu_us


def judge_big(path, n):
    """Every result of the big run's --json document judged under its policy: delivered,
    policy fetched, mode enforce, TLS required and verified. Returns the count judged."""
    with open(path) as f:
        doc = json.load(f)
    results = doc["results"]
    if len(results) != n:
        raise BenchError("the big run printed %d results for %d recipients" % (len(results), n))
    bad = [r["argument"] for r in results
           if r["outcome"] != "delivered" or r["policy"]["source"] != "fetched" or
           r["policy"]["mode"] != "enforce" or not r["tls_required"] or
           not any(m["tls"] and m["tls"]["verified"] for m in r["mx"])]
    if bad:
        raise BenchError("%d of %d recipients not delivered under their enforce policy over "
                         "verified TLS, e.g. %s" % (len(bad), n, bad[:5]))
    return n


POSTFIX_DNS = """\
name: send-rate-postfix-dns
about: DNS only, for the bench into a private Postfix on 127.0.0.1.
refs: [RFC 5321 5.1]
domain: postfix.test
dns: |
  @     MX  10 mail
  mail  A   127.0.0.1
expect:
  enforce: {outcome: delivered}
"""


def run_postfix(args, tmp, msgfile):
    """`ststest send -c 8` of --rcpts messages into a private Postfix, --rounds times:
    per round (wall, client CPU). Raises BenchError when one is not delivered."""
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import postfix_fixture as pf  # noqa: E402 - the tests' fixture, pytest needed
    ca = pf.OpensslCA(os.path.join(tmp, "pfca"))
    cert, key = ca.issue("mail", [pf.MX_HOST])
    inst = pf.PostfixInstance(str(cert), str(key), label="send-rate").start()
    scn = os.path.join(tmp, "postfix-dns.yaml")
    with open(scn, "w") as f:
        f.write(POSTFIX_DNS)
    world = None
    try:
        world, ready = start_world(args, tmp, "pfworld", scenario=scn)
        rcpts = [pf.MAILBOX] * args.rcpts
        out = []
        for i in range(args.rounds):
            wall, cpu = run_ours(args, ready, msgfile, rcpts, 8, ca_file=str(ca.cert),
                                 smtp_port=inst.port)
            out.append((wall, cpu))
            log("round %d/%d: ststest send -c 8 -> Postfix %8.1f msg/s  %.3f s" %
                (i + 1, args.rounds, args.rcpts / wall, wall))
        inst.wait_messages(args.rcpts * args.rounds, timeout=120)
        return out
    finally:
        if world is not None:
            world.stop()
        inst.stop()
        inst.cleanup()


def run_library(args):
    t0 = time.monotonic()
    r = subprocess.run([args.bin, "run", os.path.join(REPO, "scenarios")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    wall = time.monotonic() - t0
    last = r.stdout.decode("utf-8", "replace").strip().splitlines()[-1:]
    return wall, r.returncode, last[0] if last else ""


def run_policy_rps(args, tmp):
    path = os.path.join(tmp, "policy-rps.json")
    r = subprocess.run([sys.executable, os.path.join(HERE, "policy-rps.py"), "--bin", args.bin,
                        "--rounds", "1", "--duration", "3", "--json", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if r.returncode != 0:
        raise BenchError("policy-rps.py failed:\n%s" % r.stderr.decode("utf-8", "replace")[-800:])
    with open(path) as f:
        return json.load(f)


def versions(args):
    def first_line(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            return r.stdout.decode("utf-8", "replace").splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {"ststest": "%s at %s" % (first_line([args.bin, "--version"]), args.bin),
            "checkout": first_line(["git", "-C", REPO, "describe", "--always", "--dirty"]),
            "openssl": first_line(["openssl", "version"])}


def print_table(results, ver, args):
    print("send-rate: %d messages per run, %d round(s), world %s" %
          (args.rcpts, args.rounds, os.path.relpath(args.scenario, REPO)))
    print("  %s (checkout %s); %s" % (ver["ststest"], ver["checkout"], ver["openssl"]))
    print()
    print("| sender | msg/s | wall | per round msg/s | client CPU ms/msg | server CPU ms/msg "
          "| peak RSS |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, r in results.items():
        rss = "%.1f MiB" % (r["rss_kib"] / 1024.0) if r.get("rss_kib") else "-"
        wcpu = "%.2f" % r["world_cpu_ms"] if r.get("world_cpu_ms") is not None else "-"
        print("| %s | %.1f | %.3f s | %s | %.2f | %s | %s |" %
              (name, r["msg_s"], r["wall"], " / ".join("%.1f" % x for x in r["rounds"]),
               r["client_cpu_ms"], wcpu, rss))
    sys.stdout.flush()


def ratio(a, b):
    return a / b if a is not None and b else None


def print_goals(results, extra, args):
    """Every ratio of the issue's goals, from this run."""
    def get(name, key="msg_s"):
        r = results.get(name)
        return r[key] if r else None

    def line(what, value, goal, ok):
        v = "-" if value is None else ("%.2f" % value if isinstance(value, float) else str(value))
        verdict = "not measured" if ok is None else ("met" if ok else "NOT met")
        print("| %s | %s | %s | %s |" % (what, v, goal, verdict))

    print()
    print("| goal (issue 15) | this run | goal | |")
    print("|---|---:|---:|---|")
    c8 = get("ststest send -c 8")
    top = max(args.concs)
    # New verified TLS sessions per second: each message one SMTP session, plus one policy
    # fetch per domain and run (single-flight discovery, --no-cache).
    ceil = extra.get("ceiling_hs")
    for name, what in ((full_name(args), "full handshakes, --no-tls-resume"),
                       ("ststest send -c %d" % top, "as send makes them: resumed when it can")):
        best = get(name)
        sess = best * (args.rcpts + 1) / args.rcpts if best else None
        r = ratio(sess, ceil)
        line("new verified TLS sessions/s (send -c %d, %s) / wrk->nginx full handshakes/s"
             % (top, what), r, ">= 0.9", None if r is None else r >= 0.9)
    r = ratio(c8, get("openssl s_client x%d" % args.peer_workers))
    line("msg/s at -c 8 / openssl s_client x%d" % args.peer_workers, r, ">= 4",
         None if r is None else r >= 4)
    r = ratio(c8, get("swaks x%d" % args.swaks_workers))
    line("msg/s at -c 8 / swaks x%d" % args.swaks_workers, r, ">= 20",
         None if r is None else r >= 20)
    big = extra.get("big")
    if big:
        line("%d recipients at -c %d: peak RSS MiB" % (big["rcpts"], big["concurrency"]),
             big["rss_kib"] / 1024.0 if big.get("rss_kib") else None, "< 128",
             None if not big.get("rss_kib") else big["rss_kib"] / 1024.0 < 128)
        line("... judged under their policy", "%d of %d" % (big["judged"], big["rcpts"]),
             "all", big["judged"] == big["rcpts"])
        line("... DNS drops in the world", big["dns_drops"], "0", big["dns_drops"] == 0)
    lib = extra.get("library")
    if lib:
        line("scenario library wall s (default -j)", lib["wall"], "< 5", lib["wall"] < 5)
    prps = extra.get("policy_rps")
    if prps:
        line("policy server req/s / nginx keep-alive", prps["ratio"], ">= 0.5",
             prps["ratio"] >= 0.5)
    pfx = get("ststest send -c 8 -> Postfix")
    if pfx:
        line("msg/s into a private Postfix at -c 8 (no goal; Postfix's own pace)", pfx, "-",
             None)
    inflight = extra.get("rss_per_inflight_kib")
    line("RSS per in-flight delivery KiB ((peak -c %d - peak -c 8) / %d)" % (top, top - 8),
         inflight, "<= 64", None if inflight is None else inflight <= 64)
    sys.stdout.flush()


def add_world_args(ap):
    """--bin and --scenario, as every bench that sends through a world takes them."""
    ap.add_argument("--bin", default=os.environ.get("STSTEST_BIN") or
                    os.path.join(REPO, "build", "ststest"),
                    help="the ststest binary (default $STSTEST_BIN, else build/ststest)")
    ap.add_argument("--scenario", default=os.path.join(REPO, "scenarios", "valid-enforce.yaml"),
                    help="the world to send through (default scenarios/valid-enforce.yaml)")


def bin_usable(args):
    """True when args.bin is an executable, else False, saying how to get one."""
    if os.access(args.bin, os.X_OK):
        return True
    log("no ststest binary at %s: build one (cmake -S . -B build && cmake --build build -j2) "
        "or pass --bin" % args.bin)
    return False


def raise_on_signals():
    """SIGINT and SIGTERM raise KeyboardInterrupt, so that cleanup() runs."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def cleanup(world, tmp):
    """On every exit path: no more signals, the world stopped, tmp removed."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if world is not None:
        world.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_world_args(ap)
    ap.add_argument("--rcpts", type=int, default=200,
                    help="messages per run: recipients u1..uN (default 200)")
    ap.add_argument("--concurrency", default="1,8,100",
                    help="ststest send --concurrency values, comma-separated (default 1,8,100)")
    ap.add_argument("--peer-workers", type=int, default=8,
                    help="openssl s_client loops side by side (default 8; 0: no peer)")
    ap.add_argument("--swaks-workers", type=int, default=8,
                    help="swaks loops side by side (default 8; 0: none)")
    ap.add_argument("--survey-domains", type=int, default=100,
                    help="domains of the survey world (default 100; 0: none)")
    ap.add_argument("--survey-concurrency", default="8,100",
                    help="ststest send --concurrency into the survey world (default 8,100)")
    ap.add_argument("--ceiling-seconds", type=int, default=5,
                    help="seconds of wrk -> nginx full handshakes per round (default 5; 0: none)")
    ap.add_argument("--nginx-port", type=int, default=18443)
    ap.add_argument("--big", default="10000,1000",
                    help="RCPTS,CONCURRENCY of the run judged under its policy "
                         "(default 10000,1000; 'none')")
    ap.add_argument("--postfix", action="store_true",
                    help="also send into a private Postfix (root only)")
    ap.add_argument("--policy-rps", action="store_true",
                    help="also run bench/policy-rps.py --rounds 1")
    ap.add_argument("--library", action="store_true",
                    help="also time `ststest run scenarios/`")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, the median is shown (default 3)")
    ap.add_argument("--time-limit", type=float, default=300.0,
                    help="seconds one run may take before the bench fails (default 300)")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = ap.parse_args()
    try:
        args.concs = [int(c) for c in args.concurrency.split(",") if c]
        args.survey_concs = [int(c) for c in args.survey_concurrency.split(",") if c]
        args.big_n, args.big_c = ((0, 0) if args.big == "none" else
                                  tuple(int(x) for x in args.big.split(",")))
    except ValueError:
        ap.error("--concurrency, --survey-concurrency: comma-separated numbers; --big N,C")
    if not args.concs or any(not 1 <= c <= 10000 for c in args.concs + args.survey_concs):
        ap.error("--concurrency: values from 1 to 10000")
    if args.rcpts < 1 or args.rounds < 1 or args.peer_workers < 0 or args.swaks_workers < 0:
        ap.error("--rcpts and --rounds must be positive, --*-workers 0 or more")
    return args


def tools_missing(args):
    missing = []
    if args.peer_workers and not shutil.which("openssl"):
        missing.append("openssl (or --peer-workers 0)")
    if args.swaks_workers and not shutil.which("swaks"):
        missing.append("swaks (or --swaks-workers 0)")
    if args.ceiling_seconds and (not shutil.which("wrk") or not qps.find_tool("nginx")):
        missing.append("wrk and nginx (or --ceiling-seconds 0)")
    if args.postfix and (os.geteuid() != 0 or not os.access("/usr/sbin/postfix", os.X_OK)):
        missing.append("root and /usr/sbin/postfix for --postfix")
    return missing


def summarise(rounds):
    results = {}
    for n, rs in rounds.items():
        if not rs:
            continue
        med = lambda key: statistics.median(r[key] for r in rs)
        wc = [r["world_cpu_ms"] for r in rs if r.get("world_cpu_ms") is not None]
        rss = [r["rss_kib"] for r in rs if r.get("rss_kib")]
        results[n] = {"msg_s": med("msg_s"), "wall": med("wall"),
                      "client_cpu_ms": med("client_cpu_ms"),
                      "world_cpu_ms": statistics.median(wc) if wc else None,
                      "rss_kib": max(rss) if rss else None,
                      "rounds": [r["msg_s"] for r in rs]}
    return results


def main():
    args = parse_args()
    if not bin_usable(args):
        return 2
    missing = tools_missing(args)
    if missing:
        log("missing: %s; scripts/install-bench.sh installs the peers" % ", ".join(missing))
        return 2

    tmp = tempfile.mkdtemp(prefix="ststest-send-rate-")
    world = survey = nginx = None
    raise_on_signals()
    status = 0
    try:
        msgfile = os.path.join(tmp, "message.txt")
        with open(msgfile, "w") as f:
            f.write(MESSAGE)
        world, ready = start_world(args, tmp)
        domain = ready["domain"]
        rcpts = ["u%d@%s" % (i, domain) for i in range(1, args.rcpts + 1)]
        log("world ready: dns %s, smtp port %d" % (ready["dns"], ready["smtp_port"]))
        sready = None
        if args.survey_domains:
            survey, sready = start_world(args, tmp, "survey",
                                         ("--domains", str(args.survey_domains)))
            srcpts = ["u%d@d%d.%s" % (i, i % args.survey_domains + 1, sready["domain"])
                      for i in range(1, args.rcpts + 1)]
            log("survey world ready: %d domains" % args.survey_domains)
        prps = None
        if args.ceiling_seconds:
            prps = policy_rps_module()
            ctype, body = prps.fetch_policy(ready["hosts"]["mta-sts." + domain],
                                            ready["https_port"], "mta-sts." + domain)
            nginx = prps.Nginx(tmp, "127.0.0.1", args.nginx_port, ctype, body,
                               prps.KEEPALIVE_MAX, False)
            nginx.start()

        # Warm-up (and a check that every sender delivers): one message each.
        sent = 1
        run_ours(args, ready, msgfile, rcpts[:1], 1)
        if args.peer_workers:
            peer_transaction(args, ready, *mx_host(ready), rcpts[0])
            sent += 1
        if args.swaks_workers:
            swaks_transaction(args, ready, mx_host(ready)[1], msgfile, rcpts[0])
            sent += 1

        peer_name = "openssl s_client x%d" % args.peer_workers
        swaks_name = "swaks x%d" % args.swaks_workers
        runs = [("ststest send -c %d" % c, "ours", c) for c in args.concs]
        # The same at the top concurrency with a full handshake every time: the TLS
        # sessions wrk -> nginx is compared with (send resumes verified sessions by default).
        runs.append((full_name(args), "full", max(args.concs)))
        if args.peer_workers:
            runs.append((peer_name, "peer", 0))
        if args.swaks_workers:
            runs.append((swaks_name, "swaks", 0))
        for c in (args.survey_concs if survey else []):
            runs.append(("ststest send -c %d, survey %d domains" % (c, args.survey_domains),
                         "survey", c))
        rounds = {n: [] for n, _, _ in runs}
        ceiling = []
        for i in range(args.rounds):
            for n, kind, c in runs:
                w = survey if kind == "survey" else world
                wcpu0 = world_cpu_seconds(w)
                rss = {}
                if kind == "peer":
                    wall, cpu = run_peer(args, ready, rcpts)
                elif kind == "swaks":
                    wall, cpu = run_swaks(args, ready, msgfile, rcpts)
                elif kind == "survey":
                    wall, cpu = run_ours(args, sready, msgfile, srcpts, c, rss=rss)
                elif kind == "full":
                    wall, cpu = run_ours(args, ready, msgfile, rcpts, c, rss=rss,
                                         extra=("--no-tls-resume",))
                else:
                    wall, cpu = run_ours(args, ready, msgfile, rcpts, c, rss=rss)
                wcpu = world_cpu_seconds(w) - wcpu0
                if kind != "survey":
                    sent += args.rcpts
                r = {"wall": wall, "msg_s": args.rcpts / wall,
                     "client_cpu_ms": 1000.0 * cpu / args.rcpts,
                     "world_cpu_ms": 1000.0 * wcpu / args.rcpts, "rss_kib": rss.get("kib")}
                rounds[n].append(r)
                log("round %d/%d: %-34s %8.1f msg/s  %.3f s" % (i + 1, args.rounds, n,
                                                                r["msg_s"], wall))
                if not w.alive():
                    raise BenchError("the world exited during the run:\n%s" % w.stderr_tail())
            if nginx:
                hs, cpu_us = run_ceiling(args, nginx, prps)
                ceiling.append(hs)
                log("round %d/%d: wrk -> nginx (Connection: close) %8.0f handshakes/s" %
                    (i + 1, args.rounds, hs))

        extra = {}
        if ceiling:
            extra["ceiling_hs"] = statistics.median(ceiling)
        if args.big_n:
            out = os.path.join(tmp, "big.json")
            rss = {}
            brcpts = ["b%d@%s" % (i, domain) for i in range(1, args.big_n + 1)]
            wall, cpu = run_ours(args, ready, msgfile, brcpts, args.big_c, out=out, rss=rss)
            sent += args.big_n
            extra["big"] = {"rcpts": args.big_n, "concurrency": args.big_c, "wall": wall,
                            "msg_s": args.big_n / wall, "rss_kib": rss.get("kib"),
                            "client_cpu_ms": 1000.0 * cpu / args.big_n,
                            "judged": judge_big(out, args.big_n)}
            log("%d recipients at -c %d: %.1f msg/s, peak RSS %s KiB, all judged" %
                (args.big_n, args.big_c, args.big_n / wall, rss.get("kib")))
        pf_rounds = run_postfix(args, tmp, msgfile) if args.postfix else []
        if args.policy_rps:
            extra["policy_rps"] = run_policy_rps(args, tmp)
        if args.library:
            wall, rc, last = run_library(args)
            extra["library"] = {"wall": wall, "exit": rc, "summary": last}
            log("scenario library: %.1f s, exit %d: %s" % (wall, rc, last))

        results = summarise(rounds)
        if pf_rounds:
            results["ststest send -c 8 -> Postfix"] = {
                "msg_s": statistics.median(args.rcpts / w for w, _ in pf_rounds),
                "wall": statistics.median(w for w, _ in pf_rounds),
                "client_cpu_ms": statistics.median(1000.0 * c / args.rcpts for _, c in pf_rounds),
                "world_cpu_ms": None, "rss_kib": None,
                "rounds": [args.rcpts / w for w, _ in pf_rounds]}
        top = max(args.concs)
        r8, rt = results.get("ststest send -c 8"), results.get("ststest send -c %d" % top)
        if r8 and rt and r8.get("rss_kib") and rt.get("rss_kib") and top > 8:
            extra["rss_per_inflight_kib"] = (rt["rss_kib"] - r8["rss_kib"]) / (top - 8)

        for w in (world, survey):
            if w is not None:
                w.stop()
        observed = observed_line(world)
        if observed is None:
            raise BenchError("the world printed no observed line:\n%s" % world.stderr_tail())
        received = sum(len(s.get("messages", [])) for s in observed.get("smtp_sessions", []))
        if received != sent:
            raise BenchError("the world received %d messages, the bench sent %d" % (received, sent))
        drops = observed.get("dns_drops", 0)
        if "big" in extra:
            extra["big"]["dns_drops"] = drops
        log("the world received all %d messages; dns_drops %s" % (received, drops))
        if survey is not None:
            sobs = observed_line(survey)
            sreceived = sum(len(x.get("messages", [])) for x in sobs.get("smtp_sessions", []))
            want = args.rcpts * args.rounds * len(args.survey_concs)
            if sreceived != want:
                raise BenchError("the survey world received %d messages, the bench sent %d" %
                                 (sreceived, want))
            extra["survey_dns_drops"] = sobs.get("dns_drops", 0)

        ver = versions(args)
        print_table(results, ver, args)
        if ceiling:
            print("| wrk -> nginx, Connection: close (full TLS handshakes/s) | %.0f | | %s | | | |"
                  % (extra["ceiling_hs"], " / ".join("%.0f" % x for x in ceiling)))
        if "big" in extra:
            b = extra["big"]
            print("| ststest send -c %d, %d recipients, --json | %.1f | %.1f s | | %.2f | | "
                  "%.1f MiB |" % (b["concurrency"], b["rcpts"], b["msg_s"], b["wall"],
                                  b["client_cpu_ms"], (b["rss_kib"] or 0) / 1024.0))
        print_goals(results, extra, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"versions": ver, "settings": {k: v for k, v in vars(args).items()},
                           "results": results, "rounds": rounds, "extra": extra,
                           "received": received}, f, indent=2)
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except (BenchError, subprocess.TimeoutExpired) as e:
        # TimeoutExpired: a run took longer than --time-limit.
        log("FAILED: %s" % e)
        status = getattr(e, "status", 1)
    finally:
        for s in (nginx, survey):
            if s is not None:
                try:
                    s.stop()
                except Exception as e:  # noqa: BLE001 - go on stopping the rest
                    log("stopping: %s" % e)
        cleanup(world, tmp)
    return status


if __name__ == "__main__":
    sys.exit(main())
