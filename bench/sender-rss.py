#!/usr/bin/python3
"""sender-rss.py - peak memory (RSS) of `ststest send` as the number of recipients
grows: the sender should cost little per recipient, whatever their number.

Runs Debian's /usr/bin/python3 (standard library only). Starts `ststest world
SCENARIO` (default scenarios/valid-enforce.yaml), reads its ready line, and then runs
`ststest send --no-cache --concurrency C` (default 8) once for each count of
--rcpts (default 1, 1000 and 10000 recipients u1..uN@<domain>, given as arguments)
under GNU time (`/usr/bin/time -f %M`, Debian package `time`), which gives the peak
RSS (ru_maxrss) of that process alone. Not os.wait4 from here: a child that Python
forks and execs keeps the high-water mark of Python's own image (Linux carries
ru_maxrss across execve), about 16 MiB; GNU time forks from its own small image.
Every run must deliver every message (exit 0). Each figure is the median of --rounds
(default 3) runs; the goal below is checked against the largest.

Printed per count: the peak RSS, the peak per recipient, and the growth per
recipient over the 1-recipient run. Then two figures, with their method:

  * bytes per queued recipient: (peak(N2) - peak(N1)) / (N2 - N1) for the two
    largest counts, both at the same concurrency, so the deliveries in flight are
    the same and the difference is what the extra recipients cost while they wait
    (their argument and bookkeeping; `send` prints each result as soon as it and
    the ones before it are done, so a finished recipient costs nothing more);
  * bytes per in-flight delivery (--inflight K, default 64; 0: not measured): K
    recipients at concurrency K against the same K at concurrency 1, over K - 1:
    the same results, K - 1 more jobs, discoveries, SMTP sessions and TLS
    connections at once.

The goal (issue 10): with 10,000 recipients at concurrency 8 the sender stays under
--limit-mib (default 64) MiB.

Exit status: 0 the bench ran and the goal holds (or 10,000 was not measured); 1 the
10,000-recipient run at concurrency 8 is over the limit, a run did not deliver every
message, or the world failed; 2 a tool is missing or a usage error; 130 interrupted.
The world is stopped and the temporary directory removed on every exit path.
"""

import argparse
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
import types

TIME = "/usr/bin/time"  # GNU time
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GOAL_RCPTS = 10000
GOAL_CONCURRENCY = 8


# bench/send-rate.py's helpers (add_world_args, start_world, cleanup, bin_usable,
# raise_on_signals, log, and dns-qps.py's BenchError) serve this bench too.
rate = types.SimpleNamespace(**runpy.run_path(os.path.join(HERE, "send-rate.py")))
BenchError = rate.BenchError
log = rate.log


def run_send(args, ready, tmp, n, concurrency):
    """One `ststest send` to n recipients; returns (peak RSS in KiB, wall seconds)."""
    rcpts = ["u%d@%s" % (i, ready["domain"]) for i in range(1, n + 1)]
    rss_path = os.path.join(tmp, "send.maxrss")
    argv = [TIME, "-f", "%M", "-o", rss_path, args.bin, "send", "--dns", ready["dns"], "--ca-file", ready["ca_file"],
            "--smtp-port", str(ready["smtp_port"]), "--https-port", str(ready["https_port"]),
            "--no-cache", "--concurrency", str(concurrency), "--helo", "bench.invalid",
            "--from", "bench@bench.invalid"] + rcpts
    err_path = os.path.join(tmp, "send.stderr")
    t0 = time.monotonic()
    with open(err_path, "wb") as err:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        with open(err_path, "rb") as f:
            tail = "\n".join(f.read().decode("utf-8", "replace").splitlines()[-15:])
        raise BenchError("ststest send to %d recipients (concurrency %d) exited %d "
                         "(not all delivered):\n%s" % (n, concurrency, proc.returncode, tail))
    os.unlink(err_path)
    with open(rss_path) as f:
        peak = int(f.read().split()[-1])  # KiB
    return peak, wall


def measure(args, ready, tmp, n, concurrency):
    """--rounds runs of run_send: {"peak_kib": median, "peak_max_kib", "wall": median}."""
    runs = [run_send(args, ready, tmp, n, concurrency) for _ in range(args.rounds)]
    return {"peak_kib": statistics.median(r[0] for r in runs),
            "peak_max_kib": max(r[0] for r in runs),
            "wall": statistics.median(r[1] for r in runs), "rounds": [r[0] for r in runs]}


def mib(kib):
    return kib / 1024.0


def print_table(rows, inflight, args):
    print("sender-rss: `ststest send --no-cache --concurrency %d`, world %s, median of %d" %
          (args.concurrency, os.path.relpath(args.scenario, REPO), args.rounds))
    print("  %s" % args.bin)
    print()
    print("| recipients | peak RSS | per recipient | growth per recipient over 1 | wall |")
    print("|---:|---:|---:|---:|---:|")
    base = rows[0]["peak_kib"] if rows and rows[0]["rcpts"] == 1 else None
    for r in rows:
        growth = "-"
        if base is not None and r["rcpts"] > 1:
            growth = "%.2f KiB" % ((r["peak_kib"] - base) / (r["rcpts"] - 1))
        print("| %d | %.1f MiB | %.2f KiB | %s | %.1f s |" %
              (r["rcpts"], mib(r["peak_kib"]), r["peak_kib"] / r["rcpts"], growth, r["wall"]))
    if inflight:
        print()
        print("in flight: %d recipients at concurrency %d: %.1f MiB, at concurrency 1: "
              "%.1f MiB: ~%.1f KiB per delivery in flight (estimate)" %
              (inflight["k"], inflight["k"], mib(inflight["peak_k"]), mib(inflight["peak_1"]),
               (inflight["peak_k"] - inflight["peak_1"]) / (inflight["k"] - 1)))
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        print("queued: (%.1f MiB for %d - %.1f MiB for %d) / %d = %.0f bytes per queued "
              "recipient (goal <= 1024)" %
              (mib(b["peak_kib"]), b["rcpts"], mib(a["peak_kib"]), a["rcpts"],
               b["rcpts"] - a["rcpts"],
               1024.0 * (b["peak_kib"] - a["peak_kib"]) / (b["rcpts"] - a["rcpts"])))
    if inflight:
        print("in flight: (%.1f MiB - %.1f MiB) / %d = %.0f bytes per in-flight delivery "
              "(goal <= 65536)" %
              (mib(inflight["peak_k"]), mib(inflight["peak_1"]), inflight["k"] - 1,
               1024.0 * (inflight["peak_k"] - inflight["peak_1"]) / (inflight["k"] - 1)))
    sys.stdout.flush()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rate.add_world_args(ap)
    ap.add_argument("--rcpts", default="1,1000,10000",
                    help="recipient counts, comma-separated (default 1,1000,10000)")
    ap.add_argument("--concurrency", type=int, default=GOAL_CONCURRENCY,
                    help="ststest send --concurrency (default 8)")
    ap.add_argument("--inflight", type=int, default=64,
                    help="recipients for the in-flight estimate (default 64; 0: none)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per figure, the median is shown (default 3)")
    ap.add_argument("--limit-mib", type=float, default=64.0,
                    help="the goal for 10,000 recipients at concurrency 8 (default 64)")
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = ap.parse_args()
    try:
        args.counts = [int(c) for c in args.rcpts.split(",") if c]
    except ValueError:
        ap.error("--rcpts: comma-separated numbers")
    if not args.counts or any(c < 1 for c in args.counts):
        ap.error("--rcpts: positive numbers")
    if args.rounds < 1:
        ap.error("--rounds must be positive")
    if not 1 <= args.concurrency <= 10000 or not (args.inflight == 0 or
                                                   2 <= args.inflight <= 10000):
        ap.error("--concurrency from 1 to 10000, --inflight 0 or from 2 to 10000")
    return args


def main():
    args = parse_args()
    if not rate.bin_usable(args):
        return 2
    if not os.access(TIME, os.X_OK):
        log("missing: %s (Debian package time)" % TIME)
        return 2

    tmp = tempfile.mkdtemp(prefix="ststest-sender-rss-")
    world = None
    rate.raise_on_signals()
    status = 0
    try:
        world, ready = rate.start_world(args, tmp)
        log("world ready: dns %s, smtp port %d" % (ready["dns"], ready["smtp_port"]))
        rows = []
        for n in sorted(set(args.counts)):
            row = measure(args, ready, tmp, n, args.concurrency)
            row["rcpts"] = n
            rows.append(row)
            log("%6d recipients: peak RSS %s MiB (%.1f s)" %
                (n, " / ".join("%.1f" % mib(p) for p in row["rounds"]), row["wall"]))
            if not world.alive():
                raise BenchError("the world exited during the run:\n%s" % world.stderr_tail())
        inflight = None
        if args.inflight:
            k = args.inflight
            inflight = {"k": k, "peak_k": measure(args, ready, tmp, k, k)["peak_kib"],
                        "peak_1": measure(args, ready, tmp, k, 1)["peak_kib"]}
        print_table(rows, inflight, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"bin": args.bin, "settings": vars(args),
                           "runs": rows, "inflight": inflight}, f, indent=2)
        goal = [r for r in rows if r["rcpts"] == GOAL_RCPTS]
        if goal and args.concurrency == GOAL_CONCURRENCY:
            over = mib(goal[0]["peak_max_kib"]) > args.limit_mib
            print("goal: %d recipients at concurrency %d: at most %.1f MiB, %s %.0f MiB" %
                  (GOAL_RCPTS, GOAL_CONCURRENCY, mib(goal[0]["peak_max_kib"]),
                   "OVER" if over else "under", args.limit_mib))
            status = 1 if over else 0
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except BenchError as e:
        log("FAILED: %s" % e)
        status = getattr(e, "status", 1)
    finally:
        rate.cleanup(world, tmp)
    return status


if __name__ == "__main__":
    sys.exit(main())
