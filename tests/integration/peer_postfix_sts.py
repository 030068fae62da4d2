"""Replaying scenarios against a real MTA-STS peer: Postfix with postfix-mta-sts-resolver.

Used by tests/integration/test_peer_postfix_sts.py; see docs/peer-testing.md for the same by
hand. What it provides:
- `peer_problem()` / `require_peers()`: why the peer cannot run here (None when it can);
  `require_peers()` skips only when STSTEST_NO_PEERS=1 and otherwise fails with the reason.
- `NetNS`: a private network namespace `ststest-peer-<pid>` with lo up and its own
  /etc/netns/NAME/resolv.conf (which `ip netns exec` mounts over /etc/resolv.conf). Inside it
  the fake world may bind ports 53, 25 and 443, and Postfix and the policy daemon, which take
  their DNS server from resolv.conf (no port there), find it. `close()` ends every process
  left in the namespace (they can only be ours: we made it), deletes it and its /etc/netns
  directory, and returns what could not be removed (normally nothing).
- `run_peer(...)`: one `ststest run --standard-ports -j 1 --sender-cmd tools/peer-postfix-
  mta-sts.sh send ...` per scenario file inside the namespace, each with its own JSON report
  and the tool's per-delivery records, returned as `PeerCase` rows (one per scenario x mode).
- `markdown_table(rows, ...)`: the table scenario | mode | expected | peer did | verdict.

Every function returns its result or raises `PeerError` saying what failed and where;
differences between the peer and our expectations are data (rows), never exceptions.
"""
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import sys
import signal
import subprocess
import tempfile
import time

import yaml

from conftest import require_real_peer

OPT_OUT = "STSTEST_NO_PEERS"
DAEMON = "/usr/bin/mta-sts-daemon"
POSTFIX = "/usr/sbin/postfix"
# Exit status of the tool when the harness (not the peer) failed.
HARNESS_FAILED = 70
# What the peer can be asked through the tool (`run --sender-features`): everything but
# assure-tls, which ststest's own probe runs whatever the sender command (the peer has no
# part in it). require-tls, a mode override and a moved clock are declared by the tool
# itself, case by case, with exit 76 and its reason.
PEER_FEATURES = "require-tls,mode,steps,policy-cache,now"


class PeerError(RuntimeError):
    pass


def peer_problem():
    """Why Postfix + postfix-mta-sts-resolver cannot be run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, ports 25/53/443, Postfix's master)"
    for path, pkg in ((POSTFIX, "postfix"), (DAEMON, "postfix-mta-sts-resolver"),
                      ("/usr/bin/mta-sts-query", "postfix-mta-sts-resolver")):
        if not os.path.exists(path):
            return f"{path} not found: run scripts/install-peers.sh (installs {pkg})"
    for tool in ("ip", "ss"):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return f"`{tool}` not found: run scripts/install-peers.sh (installs iproute2)"
    probe = f"ststest-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace (`ip netns add`): {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def require_peers():
    """Skip when the user opted out with STSTEST_NO_PEERS=1 or is not root; otherwise fail
    loudly when the peer is unusable (conftest.require_real_peer)."""
    require_real_peer(OPT_OUT, "real-peer tests (Postfix + postfix-mta-sts-resolver)",
                      "the real-peer test needs root (network namespaces, ports 25/53/443, "
                      "Postfix's master)", peer_problem, "the real MTA-STS peer")


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                       text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown"


# ---- the network namespace ----------------------------------------------------------------

class NetNS:
    def __init__(self, name=None):
        self.name = name or f"ststest-peer-{os.getpid()}"
        self.etc = pathlib.Path("/etc/netns") / self.name
        self.created = False

    def create(self):
        if (pathlib.Path("/run/netns") / self.name).exists():
            raise PeerError(f"network namespace {self.name} already exists (left by an earlier "
                            f"run?): `ip netns pids {self.name}`, then `ip netns del {self.name}`")
        self._ip("netns", "add", self.name)
        self.created = True
        self._ip("-n", self.name, "link", "set", "lo", "up")
        self.etc.mkdir(parents=True, exist_ok=True)
        # Replaced per case by the tool with the world's DNS server; must exist before
        # `ip netns exec`, which is when it gets mounted over /etc/resolv.conf.
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        return self

    def _ip(self, *args):
        r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise PeerError(f"`ip {' '.join(args)}` exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def argv(self, *argv):
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    def pids(self):
        if not self.created:
            return []
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()]

    def close(self):
        """End what is left in the namespace, delete it and /etc/netns/NAME. Returns a list of
        what is left over (processes, the namespace, the directory); normally empty."""
        left = []
        if self.created:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in self.pids():
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while self.pids() and time.monotonic() < deadline:
                    time.sleep(0.05)
            left += [f"process {p} ({_cmdline(p)})" for p in self.pids()]
            r = subprocess.run(["ip", "netns", "del", self.name], capture_output=True, text=True)
            if r.returncode != 0:
                left.append(f"namespace {self.name}: {r.stderr.strip()}")
            self.created = False
        shutil.rmtree(self.etc, ignore_errors=True)
        if self.etc.exists():
            left.append(str(self.etc))
        if (pathlib.Path("/run/netns") / self.name).exists():
            left.append(f"/run/netns/{self.name}")
        return left

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        left = self.close()
        if left and exc[0] is None:
            raise PeerError(f"left over after the peer run: {left}")


def _cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


# ---- running the scenarios ----------------------------------------------------------------

@dataclasses.dataclass
class PeerCase:
    scenario: str
    mode: str
    expected: str          # the scenario's expectation, in words
    peer_did: str          # what the world saw, plus Postfix's own words
    verdict: str           # "as expected" or the differences
    passed: bool
    error: str | None      # the runner's error (the case could not be judged)
    harness_error: str | None  # the tool's exit 70: Postfix/daemon/namespace trouble
    unsupported: str | None    # why the peer cannot do the case (tool exit 76, features)
    exit: int | None
    records: list


def _expect_words(e):
    if not e:
        return "?"
    words = [e.get("outcome", "?")]
    if "tls" in e:
        words.append(f"tls {e['tls']}")
    if e.get("delivered_to"):
        words.append("to " + ", ".join(e["delivered_to"]))
    return ", ".join(words)


def _expectations(path, mode):
    """[(step name or None, expectation dict)] of a scenario for one mode."""
    doc = yaml.safe_load(pathlib.Path(path).read_text())
    if doc.get("steps"):
        return [(s.get("name"), (s.get("expect") or {}).get(mode)) for s in doc["steps"]]
    return [(None, (doc.get("expect") or {}).get(mode))]


def _actual_words(actual, rec):
    if not actual:
        return "?"
    words = [actual.get("outcome") or "?"]
    if actual.get("tls"):
        words.append(f"tls {actual['tls']}")
    if actual.get("delivered_to"):
        words.append("to " + ", ".join(actual["delivered_to"]))
    if actual.get("policy_fetched"):
        words.append("policy fetched")
    out = ", ".join(words)
    if rec:
        pf = f"Postfix: {rec.get('status')}"
        if rec.get("reason") and rec.get("status") != "sent":
            pf += f" ({rec['reason']})"
        if rec.get("policy"):
            pf += f"; daemon answered `{rec['policy'].strip()}`"
        else:
            pf += "; daemon not asked"
        out += f"; {pf}"
        err = rec.get("fetch_error") or ""
        if err:
            # The daemon's BadSTSPolicy carries no text: status, content type or size.
            err = err.strip()
            if err.endswith("failed with error:"):
                err += " (status, content type or size rejected)"
            out += f"; daemon: {err}"
    return out


# How each difference of the peer is read (docs/peer-postfix-mta-sts-results.md): a peer
# deviation (with the RFC clause it breaks), an adapter limit (this tool, not the peer),
# or the harness's fault (our expectation or world). Keyed by (scenario, mode); every
# row that differs must have an entry, and every entry must still differ, so that a new
# difference and a fixed one both show up.
PEER_DEVIATION, ADAPTER_LIMIT, HARNESS_FAULT = "peer deviation", "adapter limit", "harness fault"
CLASSIFIED = {
    ("cert-cn-only", "enforce"): (
        PEER_DEVIATION,
        "RFC 8461 4.2 as the scenario reads it (the MX name as a DNS-ID subjectAltName): "
        "Postfix falls back to the subject CN when the certificate has no subjectAltName, "
        "which RFC 6125 6.4.4 allows a client only as a last resort; delivered over TLS to "
        "a certificate without SAN"),
    ("mx-fallback", "enforce"): (
        PEER_DEVIATION,
        "security, RFC 8461 4.2 (the certificate must be valid for the MX host name): the "
        "daemon turns mx: *.example.test into `secure match=.example.test`, so Postfix takes "
        "a certificate for any name under example.test; the preferred MX, with a certificate "
        "for wrong.example.test, got the message"),
    ("mx-inject-after-starttls", "enforce"): (
        HARNESS_FAULT,
        "our expectation (abort on bytes injected before the TLS handshake) is stricter than "
        "RFC 3207 5, which asks the client to discard what it learnt before TLS; Postfix "
        "discarded them and delivered over verified TLS"),
    ("mx-tls-1.0-only", "testing"): (
        PEER_DEVIATION,
        "RFC 8996 (TLS 1.0 must not be negotiated): Postfix's own protocol list still allows "
        "TLS 1.0 and delivered over it, where the scenario expects cleartext"),
    ("mx-tls-1.0-only", "none"): (
        PEER_DEVIATION,
        "RFC 8996 (TLS 1.0 must not be negotiated), as for testing"),
    ("mx-wildcard-two-labels", "enforce"): (
        PEER_DEVIATION,
        "security, RFC 8461 4.1 (a wildcard matches the leftmost label only): `match="
        ".example.test` lets *.example.test cover mail.eu.example.test; delivered to an MX "
        "the policy does not allow"),
    ("policy-mx-bad-wildcard", "enforce"): (
        PEER_DEVIATION,
        "RFC 8461 3.2 and 4.1: the mx pattern *.*.example.test makes the policy invalid; the "
        "daemon applies it (match=.*.example.test) and the message is deferred"),
    ("txt-id-not-alnum", "enforce"): (
        PEER_DEVIATION,
        "RFC 8461 3.1: an id that is not 1-32 alphanumerics announces no policy; the daemon "
        "fetches and applies the policy anyway (deferred: it names only other.example.test)"),
    ("txt-id-too-long", "enforce"): (
        PEER_DEVIATION,
        "RFC 8461 3.1: a 33-character id announces no policy; the daemon fetches and applies "
        "the policy anyway (deferred: it names only other.example.test)"),
}


def classify(scenario, mode):
    """(class, explanation) of a differing row, or None when it is not classified."""
    return CLASSIFIED.get((scenario, mode))


def normalized(verdict):
    """A verdict as compared with the committed table: the clock skew a case reports
    (seconds since the case started) varies from run to run."""
    return re.sub(r"clock by -?\d+ s", "clock by N s", verdict)


def parse_table(text):
    """The rows of a table markdown_table() wrote: {(scenario, mode): verdict}."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) >= 5 and cells[0] not in ("scenario", "---"):
            rows[(cells[0], cells[1])] = normalized(cells[4])
    return rows


def compare_with_table(rows, table_text):
    """What differs between this run's rows and the committed table, one line each
    (empty: the run matches the table for every case it ran)."""
    want = parse_table(table_text)
    out = []
    for r in rows:
        key = (r.scenario, r.mode)
        got = normalized(r.verdict)
        if key not in want:
            out.append(f"{r.scenario} [{r.mode}]: not in the table; the run says: {got}")
        elif want[key] != got:
            out.append(f"{r.scenario} [{r.mode}]: the table says: {want[key]}\n"
                       f"    the run says: {got}")
    return out


def _cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def run_peer(ststest_bin, tool, scenario_files, workdir, netns, time_limit=60, wait=40):
    """Run each scenario file through the peer inside netns. Returns [PeerCase]."""
    workdir = pathlib.Path(workdir)
    # Postfix's unprivileged daemons must traverse the instance's directories: /tmp, 0755.
    pfdir = pathlib.Path(tempfile.mkdtemp(prefix="ststest-peer-postfix-", dir="/tmp"))
    pfdir.chmod(0o755)
    rows = []
    try:
        r = subprocess.run([str(tool), "setup", str(pfdir)], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise PeerError(f"`{tool} setup` exited {r.returncode}: {r.stdout}{r.stderr}")
        for scn in scenario_files:
            scn = pathlib.Path(scn)
            name = scn.stem
            report = workdir / f"{name}.json"
            records = workdir / f"{name}.records.jsonl"
            cmd = (f"{shlex.quote(str(tool))} send --dir {shlex.quote(str(pfdir))} --rcpt {{rcpt}}"
                   f" --dns {{dns}} --ca {{ca}} --mode {{mode}} --cache {{cache}}"
                   f" --require-tls {{require_tls}} --sender-mode {{sender_mode}} --now {{now}}"
                   f" --record {shlex.quote(str(records))} --wait {wait}")
            argv = netns.argv(ststest_bin, "run", "--standard-ports", "-j", "1",
                              "--time-limit", str(time_limit), "--json", report,
                              "--sender-features", PEER_FEATURES, "--sender-cmd", cmd, scn)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            (workdir / f"{name}.out").write_text(r.stdout + r.stderr)
            if r.returncode not in (0, 1) or not report.exists():
                raise PeerError(f"`ststest run` on {scn} exited {r.returncode} without a report:"
                                f"\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
            recs = [json.loads(l) for l in records.read_text().splitlines()] \
                if records.exists() else []
            doc = json.loads(report.read_text())
            for case in doc["cases"]:
                rows.append(_row(scn, case, recs, r.stdout))
    finally:
        # The tool stops its Postfix after every delivery; make sure of it before removing.
        pidfile = pfdir / "queue" / "pid" / "master.pid"
        if pidfile.exists():
            try:
                master = int(pidfile.read_text().split()[0])
                if pathlib.Path(f"/proc/{master}/cmdline").read_bytes().find(b"master") >= 0:
                    os.kill(master, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        for f in ("maillog.all", "daemon.log.all"):
            if (pfdir / f).exists():
                shutil.copy(pfdir / f, workdir / f)
        shutil.rmtree(pfdir, ignore_errors=True)
    return rows


def _row(scn, case, recs, run_output):
    mode = case["mode"]
    # The tool's records for this mode, in order (one per step), from this scenario's run.
    mine = [r for r in recs if r.get("mode") == mode]
    exps = _expectations(scn, mode)
    actual = case.get("actual") or {}
    if isinstance(actual, dict) and "steps" in actual:
        steps = actual["steps"]
        expected = "; ".join(f"{n}: {_expect_words(e)}" for n, e in exps)
        did = "; ".join(f"{s.get('step')}: {_actual_words(s.get('actual'), mine[i] if i < len(mine) else None)}"
                        for i, s in enumerate(steps))
    else:
        expected = _expect_words(exps[0][1])
        did = _actual_words(actual, mine[-1] if mine else None)
    harness = None
    if case.get("exit") == HARNESS_FAILED or any(str(r.get("harness_error")) == "1" for r in mine):
        harness = (f"the tool exited {case.get('exit')}: "
                   + _tool_error(run_output, case["scenario"], mode))
    if case.get("error"):
        verdict = f"ERROR: {case['error']}"
    elif case.get("unsupported"):
        verdict = f"unsupported: {case['unsupported']}"
    elif case.get("passed"):
        verdict = "as expected"
    else:
        verdict = "differs: " + "; ".join(case.get("differences") or ["?"])
    return PeerCase(scenario=case["scenario"], mode=mode, expected=expected, peer_did=did,
                    verdict=verdict, passed=bool(case.get("passed")), error=case.get("error"),
                    harness_error=harness, exit=case.get("exit"), records=mine,
                    unsupported=case.get("unsupported"))


def _tool_error(run_output, scenario, mode):
    """The tool's own complaint (its stderr lines) from the runner's transcript."""
    lines = [l.strip() for l in run_output.splitlines() if "peer-postfix-mta-sts:" in l]
    return " / ".join(lines[-3:]) or "(see the run output)"


def markdown_table(rows, versions, when=None):
    when = when or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    n_same = sum(1 for r in rows if r.passed)
    n_unsup = sum(1 for r in rows if r.unsupported)
    out = [
        "# ststest scenarios against Postfix + postfix-mta-sts-resolver",
        "",
        f"Generated {when} by tests/integration/test_peer_postfix_sts.py "
        f"({', '.join(f'{k} {v}' for k, v in versions.items())}).",
        "",
        f"{len(rows)} cases; the peer did what the scenario expects of a correct sender in "
        f"{n_same}, differs in {len(rows) - n_same - n_unsup}, and {n_unsup} are unsupported "
        "(the peer cannot be asked to do them: the reason is given). A difference is "
        "information about the "
        "peer (or about our expectation), not a test failure. Judged from the fake world's "
        "observer log: what reached which MX, over verified TLS or not (`failures` and "
        "`policy_source` are only known to our own sender, so they are not compared). "
        "docs/peer-testing.md says how to run this and what the differences mean.",
        "",
        "| scenario | mode | expected | peer did | verdict | reading |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = classify(r.scenario, r.mode) if not r.passed and not r.unsupported else None
        reading = f"{c[0]}: {c[1]}" if c else ""
        out.append(f"| {_cell(r.scenario)} | {_cell(r.mode)} | {_cell(r.expected)} | "
                   f"{_cell(r.peer_did)} | {_cell(r.verdict)} | {_cell(reading)} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    """By hand: `python3 tests/integration/peer_postfix_sts.py [--bin B] [--out F] SCENARIO...`
    runs the scenarios through the peer (namespace, Postfix, daemon, clean-up included) and
    prints the table. Exit 0 when every case ran (whatever the peer did), 1 otherwise."""
    import argparse
    here = pathlib.Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--bin", default=os.environ.get("STSTEST_BIN", str(here / "build" / "ststest")))
    ap.add_argument("--out", help="write the Markdown table here too")
    ap.add_argument("--logs", help="keep reports and Postfix/daemon logs in this directory")
    ap.add_argument("scenarios", nargs="+")
    args = ap.parse_args(argv)
    problem = peer_problem()
    if problem:
        print(f"cannot run the peer: {problem}", file=sys.stderr)
        return 1
    logs = pathlib.Path(args.logs or tempfile.mkdtemp(prefix="ststest-peer-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    ns = NetNS()
    try:
        ns.create()
        rows = run_peer(args.bin, here / "tools" / "peer-postfix-mta-sts.sh", args.scenarios,
                        logs, ns)
    finally:
        left = ns.close()
    table = markdown_table(rows, {"postfix": package_version("postfix"),
                                  "postfix-mta-sts-resolver":
                                      package_version("postfix-mta-sts-resolver")})
    print(table)
    if args.out:
        pathlib.Path(args.out).write_text(table)
    bad = [r for r in rows if r.error or r.harness_error]
    for r in bad:
        print(f"harness error: {r.scenario} [{r.mode}]: {r.error or r.harness_error}",
              file=sys.stderr)
    if left:
        print(f"left over: {left}", file=sys.stderr)
    print(f"logs: {logs}", file=sys.stderr)
    return 1 if bad or left else 0


if __name__ == "__main__":
    raise SystemExit(main())
