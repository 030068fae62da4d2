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
    --concurrency (default 1, 8, 100);
  * the peer: --peer-workers (default 8) loops side by side, each running
    `openssl s_client -starttls smtp` once per message for its share of the same
    N recipients: STARTTLS, certificate and name verified against the world's CA,
    EHLO, MAIL, RCPT, DATA, the same message, QUIT.

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


def start_world(args, tmp):
    wdir = os.path.join(tmp, "world")
    os.makedirs(wdir)
    world = qps.Server("world", [args.bin, "world", "--dir", wdir, args.scenario], None, None,
                       0, tmp, pin=False)
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


def run_ours(args, ready, msgfile, rcpts, concurrency):
    argv = [args.bin, "send", "--dns", ready["dns"], "--ca-file", ready["ca_file"],
            "--smtp-port", str(ready["smtp_port"]), "--https-port", str(ready["https_port"]),
            "--no-cache", "--concurrency", str(concurrency), "--from", FROM, "--helo", HELO,
            "--data", msgfile] + rcpts
    cpu0 = children_cpu_seconds()
    t0 = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=args.time_limit)
    wall = time.monotonic() - t0
    cpu = children_cpu_seconds() - cpu0
    if r.returncode != 0:
        tail = "\n".join(r.stderr.decode("utf-8", "replace").splitlines()[-15:])
        raise BenchError("ststest send --concurrency %d exited %d (not all delivered):\n%s" %
                         (concurrency, r.returncode, tail))
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


def print_table(results, peer_name, ver, args):
    peer = results.get(peer_name)
    print("send-rate: %d messages per run, %d round(s), world %s" %
          (args.rcpts, args.rounds, os.path.relpath(args.scenario, REPO)))
    print("  %s (checkout %s); %s" % (ver["ststest"], ver["checkout"], ver["openssl"]))
    print()
    print("| sender | msg/s | wall | per round msg/s | client CPU ms/msg | world CPU ms/msg | ours / peer |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, r in results.items():
        ratio = "-"
        if peer and name != peer_name:
            ratio = "%.2f" % (r["msg_s"] / peer["msg_s"])
        print("| %s | %.1f | %.3f s | %s | %.2f | %.2f | %s |" %
              (name, r["msg_s"], r["wall"], " / ".join("%.1f" % x for x in r["rounds"]),
               r["client_cpu_ms"], r["world_cpu_ms"], ratio))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_world_args(ap)
    ap.add_argument("--rcpts", type=int, default=200,
                    help="messages per run: recipients u1..uN (default 200)")
    ap.add_argument("--concurrency", default="1,8,100",
                    help="ststest send --concurrency values, comma-separated (default 1,8,100)")
    ap.add_argument("--peer-workers", type=int, default=8,
                    help="openssl s_client loops side by side (default 8; 0: no peer)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, the median is shown (default 3)")
    ap.add_argument("--time-limit", type=float, default=300.0,
                    help="seconds one run may take before the bench fails (default 300)")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = ap.parse_args()
    try:
        concs = [int(c) for c in args.concurrency.split(",") if c]
    except ValueError:
        ap.error("--concurrency: comma-separated numbers")
    if not concs or any(not 1 <= c <= 1000 for c in concs):
        ap.error("--concurrency: values from 1 to 1000")
    if args.rcpts < 1 or args.rounds < 1 or args.peer_workers < 0:
        ap.error("--rcpts and --rounds must be positive, --peer-workers 0 or more")
    if not bin_usable(args):
        return 2
    if args.peer_workers and not shutil.which("openssl"):
        log("missing: openssl (Debian package openssl), or run with --peer-workers 0")
        return 2

    tmp = tempfile.mkdtemp(prefix="ststest-send-rate-")
    world = None
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

        # Warm-up (and a check that both senders deliver): one message each.
        sent = 0
        run_ours(args, ready, msgfile, rcpts[:1], 1)
        sent += 1
        if args.peer_workers:
            peer_transaction(args, ready, *mx_host(ready), rcpts[0])
            sent += 1

        peer_name = "openssl s_client x%d" % args.peer_workers
        names = ["ststest send -c %d" % c for c in concs]
        if args.peer_workers:
            names.append(peer_name)
        rounds = {n: [] for n in names}
        for i in range(args.rounds):
            for n in names:
                wcpu0 = world_cpu_seconds(world)
                if n == peer_name:
                    wall, cpu = run_peer(args, ready, rcpts)
                else:
                    wall, cpu = run_ours(args, ready, msgfile, rcpts, concs[names.index(n)])
                wcpu = world_cpu_seconds(world) - wcpu0
                sent += args.rcpts
                r = {"wall": wall, "msg_s": args.rcpts / wall,
                     "client_cpu_ms": 1000.0 * cpu / args.rcpts,
                     "world_cpu_ms": 1000.0 * wcpu / args.rcpts}
                rounds[n].append(r)
                log("round %d/%d: %-22s %8.1f msg/s  %.3f s" % (i + 1, args.rounds, n,
                                                                r["msg_s"], wall))
                if not world.alive():
                    raise BenchError("the world exited during the run:\n%s" % world.stderr_tail())

        results = {}
        for n, rs in rounds.items():
            med = lambda key: statistics.median(r[key] for r in rs)
            results[n] = {"msg_s": med("msg_s"), "wall": med("wall"),
                          "client_cpu_ms": med("client_cpu_ms"),
                          "world_cpu_ms": med("world_cpu_ms"),
                          "rounds": [r["msg_s"] for r in rs]}

        world.stop()
        observed = observed_line(world)
        if observed is None:
            raise BenchError("the world printed no observed line:\n%s" % world.stderr_tail())
        received = sum(len(s.get("messages", [])) for s in observed.get("smtp_sessions", []))
        if received != sent:
            raise BenchError("the world received %d messages, the bench sent %d" % (received, sent))
        log("the world received all %d messages" % received)

        ver = versions(args)
        print_table(results, peer_name, ver, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"versions": ver, "settings": vars(args), "results": results,
                           "rounds": rounds, "received": received}, f, indent=2)
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except (BenchError, subprocess.TimeoutExpired) as e:
        # TimeoutExpired: a run took longer than --time-limit.
        log("FAILED: %s" % e)
        status = getattr(e, "status", 1)
    finally:
        cleanup(world, tmp)
    return status


if __name__ == "__main__":
    sys.exit(main())
