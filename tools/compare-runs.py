#!/usr/bin/python3
"""compare-runs.py - is a refactor byte-identical? Replay the scenario library with two
ststest binaries and compare what they said, case by case.

    /usr/bin/python3 tools/compare-runs.py [options] A B
    /usr/bin/python3 tools/compare-runs.py [options] --record DIR A

A and B are ststest binaries, or folders that --record wrote (the raw output of an
earlier replay, e.g. of the untouched tree). Exit 0 when every suite matches, 1 when
something differs (the differences are printed), 2 on usage or a run that cannot start.

Suites (each one `ststest run -v --json REPORT` over the library, so every case's
transcript is printed):
  run         our sender in-process (the runner's own verdicts and JSON report);
  send        `--sender-cmd 'BIN send --json -v ...'`: the sender's per-recipient JSON
              document and its transcript, for every case and step (the runner logs the
              command's stdout and stderr into the case transcript);
  check       the same with `BIN check --json -v ... {domain}`;
  limit       `run --time-limit 1`: cases that run over it end in the runner's
              "time limit" error (our sender in-process);
  send-limit  `send --time-limit 1` as the external sender: the sender's own JSON for
              recipients deferred by its deadline.

What is normalised, and only this, because it differs from run to run of one binary:
  - relative timestamps "[012.345]", case and run durations "(0.04s)", "12.3s)",
    and the report's "seconds" fields;
  - the loopback block of each case's world ("127.X.Y." other than 127.0.0.1), which
    the runner hands out per case;
  - temporary folders (/tmp/ststest-*-XXXXXX, the world's and the case's), and the
    path of the binary itself in the external sender's command line;
  - wall-clock times: the cases' virtual clock starts at time(NULL), so certificate
    dates, cache times and --now values move with the wall clock (ISO 8601, curl's
    "Mon dd hh:mm:ss yyyy GMT", unix times of 10 digits);
  - `check`'s stage timings in milliseconds (its "timings ms:" facts line, the numbers
    of its JSON `timings_ms` and the ms column of its matrix);
  - libcurl's debug lines for TLS 1.3 session tickets ("TLS handshake, Newsession
    Ticket"): whether the server's tickets arrive before the sender closes a fetch it
    rejected is a race of the TLS session, not the sender's doing;
  - the order of cases (they run in parallel) and the interleaving of the world's
    lines with the sender's in a transcript (two threads writing to one log), and of an
    external sender's stderr with its stdout (two pipes): each stream is compared in
    its own order;
  - the run summary's "N case(s) ... at a time" line is kept, the per-case progress
    line of a terminal does not occur (stdout is a file).
Nothing else: every other byte of every case's report entry and transcript must match.

A few cases race by nature (which of two timers fires first, whether TLS session
tickets arrive before the close, how many bytes of a slow drip pass before a deadline).
A case that differs is therefore replayed on its own (`run --filter NAME`, on each side
that is a binary) up to --tries times in all; it matches when some replay of A equals
some replay of B, and the summary names every case that needed a replay.
"""

import argparse
import difflib
import json
import os
import re
import subprocess
import sys

SUITES = ("run", "send", "check", "limit", "send-limit")

SENDER_ARGS = ("--dns {dns} --ca-file {ca} --smtp-port {smtp_port} --https-port {https_port} "
               "--helo runner.invalid --timeout 10 -v {ststest_flags}")


def suite_args(suite, binary, report):
    base = [binary, "run", "-v", "--json", report]
    if suite == "run":
        return base
    if suite == "limit":
        return base + ["--time-limit", "1"]
    if suite in ("send", "send-limit"):
        limit = " --time-limit 1" if suite == "send-limit" else ""
        cmd = (f"{binary} send --json --from ststest@runner.invalid{limit} {SENDER_ARGS} "
               "{rcpt}")
        return base + ["--sender-cmd", cmd]
    if suite == "check":
        return base + ["--sender-cmd", f"{binary} check --json {SENDER_ARGS} {{domain}}"]
    raise ValueError(suite)


def record(binary, outdir, scenarios, jobs, suites, only=None):
    """Run every suite with binary; keep the raw stdout, stderr, exit status, report.
    only: the name of the one scenario to run (a replay)."""
    os.makedirs(outdir, exist_ok=True)
    binary = os.path.abspath(binary)
    with open(os.path.join(outdir, "binary"), "w") as f:
        f.write(binary)
    for suite in suites:
        report = os.path.join(outdir, f"{suite}.json")
        args = suite_args(suite, binary, report) + (["-j", str(jobs)] if jobs else []) + [scenarios]
        if only:
            args[-1:-1] = ["--filter", only]
        with open(os.path.join(outdir, f"{suite}.out"), "wb") as out, \
                open(os.path.join(outdir, f"{suite}.err"), "wb") as err:
            rc = subprocess.call(args, stdout=out, stderr=err)
        with open(os.path.join(outdir, f"{suite}.rc"), "w") as f:
            f.write(f"{rc}\n")
        if not only:
            print(f"{binary}: {suite}: exit {rc}", file=sys.stderr)


NORMALISE = [
    (re.compile(r"\[\d{3,}\.\d{3}\]"), "[T]"),
    (re.compile(r"\(\d+\.\d+s\)"), "(Ns)"),
    (re.compile(r", \d+\.\d+s\)"), ", Ns)"),
    (re.compile(r"/tmp/ststest-([a-z]+)-[A-Za-z0-9]{6}"), r"/tmp/ststest-\1-XXXXXX"),
    (re.compile(r"\b127\.(?!0\.0\.1\b)\d{1,3}\.\d{1,3}\b"), "127.X.Y"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<ISO-TIME>"),
    (re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT"), "<GMT-TIME>"),
    (re.compile(r"\b1\d{9}\b"), "<UNIX-TIME>"),
    # `check`'s stage timings (milliseconds): its FACTS line, its JSON `timings_ms`, and
    # the ms column of its matrix (before the cert-expires column)
    (re.compile(r"timings ms: .*$"), "timings ms: <MS>"),
    (re.compile(r'"(dns|connect|banner|ehlo|starttls|handshake|ehlo_tls|first_byte|total)": '
                r"\d+(\.\d+)?(e-?\d+)?\b"), r'"\1": <MS>'),
    (re.compile(r" \d+\.\d+ +(\d{4}-\d\d-\d\d|-) *$"), r" <MS> \1"),
]


def norm(text, binary=None):
    if binary:
        text = text.replace(binary, "<BIN>")
    for rx, rep in NORMALISE:
        text = rx.sub(rep, text)
    return text


HEADER = re.compile(r"^(PASS|FAIL|ERROR) (\S+) \[([^\]]+)\] \(")
SESSION_TICKET = re.compile(r"\bhttps TLSv1\.3 \(IN\), TLS handshake, Newsession Ticket \(4\):$")
EXTERNAL_STDERR = "sender: external (stderr): "  # its own pipe: ordered apart from stdout
TRANSCRIPT_LINE = re.compile(r"^    \[\d{3,}\.\d{3}\] (world:  |sender: )")


def split_cases(stdout, binary):
    """{(scenario, mode): {"head": [...], "sender": [...], "world": [...]}} and the
    lines outside every case (the run's header and summary)."""
    cases, outside, cur = {}, [], None
    for line in stdout.splitlines():
        m = HEADER.match(line)
        if m:
            cur = {"head": [norm(line, binary)], "sender": [], "stderr": [], "world": []}
            cases[(m.group(2), m.group(3))] = cur
            continue
        if cur is not None and line.startswith("  "):
            if SESSION_TICKET.search(line):
                continue
            t = TRANSCRIPT_LINE.match(line)
            stream = "world" if t and t.group(1).startswith("world") else (
                ("stderr" if EXTERNAL_STDERR in line else "sender") if t else "head")
            cur[stream].append(norm(line, binary))
            continue
        cur = None
        if line.strip():
            outside.append(norm(line, binary))
    return cases, outside


def norm_json(v, binary):
    if isinstance(v, dict):
        return {k: norm_json(x, binary) for k, x in v.items() if k != "seconds"}
    if isinstance(v, list):
        return [norm_json(x, binary) for x in v]
    if isinstance(v, str):
        return norm(v, binary)
    return v


def load_report(path, binary):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return {"unreadable": str(e)}
    doc = norm_json(doc, binary)
    doc["cases"] = {f"{c.get('scenario')} [{c.get('mode')}]": c for c in doc.get("cases", [])}
    return doc


def read(d, name):
    with open(os.path.join(d, name), encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def load(d, suite):
    """One recorded suite, normalised: exit status, the lines outside cases, the
    report's totals, and per case {"head", "sender", "world", "report"}."""
    binary = read(d, "binary").strip()
    cases, outside = split_cases(read(d, f"{suite}.out"), binary)
    report = load_report(os.path.join(d, f"{suite}.json"), binary)
    for key, c in cases.items():
        c["report"] = report.get("cases", {}).pop(f"{key[0]} [{key[1]}]", None)
    for name, c in report.pop("cases", {}).items():  # in the report only
        cases[tuple(name[:-1].split(" [", 1))] = {"report": c}
    return {"rc": read(d, f"{suite}.rc"), "outside": outside, "totals": report,
            "cases": cases}


def show_diff(what, a, b, limit=60):
    lines = list(difflib.unified_diff(a, b, "A", "B", lineterm="", n=2))
    print(f"--- {what}")
    for line in lines[:limit]:
        print(f"    {line}")
    if len(lines) > limit:
        print(f"    ... ({len(lines) - limit} more diff lines)")


def case_diffs(label, x, y, show):
    """The parts in which two cases differ (printed when show)."""
    if x is None or y is None:
        if show:
            print(f"--- {label}: only in {'A' if y is None else 'B'}")
        return ["presence"]
    parts = []
    for part in ("head", "sender", "stderr", "world", "report"):
        if x.get(part) != y.get(part):
            parts.append(part)
            if show:
                def lines(v):
                    return json.dumps(v, indent=1, sort_keys=True).splitlines() \
                        if part == "report" else (v or [])
                show_diff(f"{label}: {part}", lines(x.get(part)), lines(y.get(part)))
    return parts


def compare_suite(sides, suite, o):
    """Compare one suite; a differing case is replayed up to o.tries - 1 more times on
    each side that is a binary (races in the timing of a case, see --tries)."""
    a, b = (load(d, suite) for d in sides["dirs"])
    diffs = 0
    if a["rc"] != b["rc"]:
        print(f"--- {suite}: exit status {a['rc'].strip()} vs {b['rc'].strip()}")
        diffs += 1
    if a["outside"] != b["outside"]:
        show_diff(f"{suite}: run header/summary", a["outside"], b["outside"])
        diffs += 1
    if a["totals"] != b["totals"]:
        print(f"--- {suite}: report totals {a['totals']} vs {b['totals']}")
        diffs += 1
    retried = []
    for key in sorted(set(a["cases"]) | set(b["cases"])):
        label = f"{suite}: {key[0]} [{key[1]}]"
        xs, ys = [a["cases"].get(key)], [b["cases"].get(key)]
        ok = not case_diffs(label, xs[0], ys[0], False)
        for attempt in range(1, o.tries if not ok else 0):
            more = []
            for i, side in enumerate(sides["binaries"]):
                if side:
                    d = os.path.join(o.work, "retry", f"{'AB'[i]}{attempt}-{key[0]}")
                    record(side, d, o.scenarios, 1, [suite], key[0])
                    more.append(load(d, suite)["cases"].get(key))
                else:
                    more.append(None)
            if more[0] is not None:
                xs.append(more[0])
            if more[1] is not None:
                ys.append(more[1])
            ok = any(not case_diffs(label, x, y, False) for x in xs for y in ys)
            if ok:
                retried.append(f"{key[0]} [{key[1]}] (attempt {attempt + 1})")
                break
        if not ok:
            case_diffs(label, xs[0], ys[0], True)
            diffs += 1
    print(f"{suite}: {len(a['cases'])} cases, "
          f"{'identical' if not diffs else f'{diffs} difference(s)'}"
          + (f"; matched only on a replay: {', '.join(retried)}" if retried else ""))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", default="scenarios/", help="the library (default scenarios/)")
    ap.add_argument("-j", "--jobs", type=int, default=2,
                    help="cases at once (default 2; 0: the runner's own default, with lanes "
                         "for the waiting cases)")
    ap.add_argument("--suites", default=",".join(SUITES), help="comma-separated subset")
    ap.add_argument("--record", metavar="DIR", help="only run binary A, keep its output in DIR")
    ap.add_argument("--work", default="/tmp/ststest-compare", help="where runs are kept")
    ap.add_argument("--tries", type=int, default=3,
                    help="replays of a differing case (one scenario, both sides when they are "
                         "binaries) before it counts as a difference (default 3 in all)")
    ap.add_argument("a")
    ap.add_argument("b", nargs="?")
    o = ap.parse_args()
    suites = [s for s in o.suites.split(",") if s]
    if any(s not in SUITES for s in suites):
        ap.error(f"suites are {', '.join(SUITES)}")
    if o.record:
        record(o.a, o.record, o.scenarios, o.jobs, suites)
        return 0
    if not o.b:
        ap.error("name two binaries or recorded folders")
    sides = {"dirs": [], "binaries": []}
    for i, side in enumerate((o.a, o.b)):
        if os.path.isdir(side):
            sides["dirs"].append(side)
            sides["binaries"].append(None)
        else:
            d = os.path.join(o.work, "AB"[i])
            record(side, d, o.scenarios, o.jobs, suites)
            sides["dirs"].append(d)
            sides["binaries"].append(os.path.abspath(side))
    diffs = sum(compare_suite(sides, s, o) for s in suites)
    print("identical" if not diffs else f"{diffs} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
