"""Replaying the scenario library with ZoneMTA's outbound path (tools/zonemta) and comparing
the differences with the table of docs/peer-zonemta-results.md.

Used by tests/integration/test_peer_zonemta.py; by hand:
    /usr/bin/python3 tests/integration/peer_zonemta.py REPORT.json
prints the table rows (scenario | mode | run shows) of a `tools/zonemta/run.sh --json` report,
to be classified and pasted into the results page.

- `zonemta_problem()`: why the adapter cannot run here (None when it can): node or the
  pinned modules missing, or installed at versions other than the lock file's.
- `signature(case)`: what a case of a `run --json` report shows, in a short stable form:
  `unsupported` when the adapter exited 76 (or the runner reports the case so), else the
  differing fields with what the peer did, `step:field=got` (the step only in multi-step
  cases), in the order the runner gave them.
- `run_rows(report)`: {(scenario, mode): signature} of every case that did not pass, and of
  every unsupported one.
- `doc_rows(text)`: the same from the results page's table (its first three columns).

Differences between the peer and our expectations are data; a problem running the peer is
returned as a string (or raised as RuntimeError by `run_library`), never a row.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

SRC = pathlib.Path(os.environ.get("STSTEST_SOURCE_DIR",
                                  pathlib.Path(__file__).resolve().parents[2]))
TOOL_DIR = SRC / "tools" / "zonemta"
RUN = TOOL_DIR / "run.sh"
RESULTS = SRC / "docs" / "peer-zonemta-results.md"
OPT_OUT = "STSTEST_NO_PEERS"
# The adapter's exit status for a case that asks for a feature ZoneMTA lacks.
EX_UNSUPPORTED = 76
# The modules whose versions the results page is about.
PINNED = ("zone-mta", "mx-connect", "nodemailer", "mailauth")


def node_path():
    """The node that runs the adapter: $STSTEST_NODE, else Debian's /usr/bin/node (what
    scripts/install-peers.sh installs), else the first on PATH."""
    env = os.environ.get("STSTEST_NODE")
    if env:
        return env
    if os.path.exists("/usr/bin/node"):
        return "/usr/bin/node"
    return shutil.which("node")


def installed_versions():
    """{module: version} from tools/zonemta/node_modules (None for a missing module)."""
    out = {}
    for mod in PINNED:
        pj = TOOL_DIR / "node_modules" / mod / "package.json"
        out[mod] = json.loads(pj.read_text())["version"] if pj.exists() else None
    return out


def locked_versions():
    """{module: version} as tools/zonemta/package-lock.json pins them."""
    lock = json.loads((TOOL_DIR / "package-lock.json").read_text())
    return {mod: lock["packages"].get(f"node_modules/{mod}", {}).get("version") for mod in PINNED}


def zonemta_problem():
    node = node_path()
    if not node or not os.access(node, os.X_OK):
        return "node not found: run scripts/install-peers.sh (installs Debian's nodejs and npm)"
    r = subprocess.run([node, "--version"], capture_output=True, text=True)
    m = re.match(r"v(\d+)\.(\d+)", r.stdout.strip())
    if r.returncode != 0 or not m or (int(m[1]), int(m[2])) < (18, 19):
        return f"{node} --version says {r.stdout.strip() or r.stderr.strip()!r}: Node.js 18.19 or newer needed"
    have, want = installed_versions(), locked_versions()
    if have != want:
        return (f"tools/zonemta/node_modules has {have}, the lock file pins {want}: "
                "run scripts/install-peers.sh (npm ci)")
    return None


def signature(case):
    actual = case.get("actual") or {}
    if (case.get("result") == "unsupported" or case.get("unsupported")
            or actual.get("exit") == EX_UNSUPPORTED or case.get("exit") == EX_UNSUPPORTED):
        return "unsupported"
    items = []
    for d in case.get("differences") or []:
        if isinstance(d, dict) and "field" in d:
            # A structured difference (should the runner's JSON give them as objects).
            m = [None, d.get("step"), d["field"], json.dumps(d.get("got")).strip('"')]
            m[1] = str(m[1]) if m[1] not in (None, "") else None
        else:
            text = d if isinstance(d, str) else json.dumps(d, sort_keys=True)
            m = re.match(r"(?:step (\d+)\b[^:]*: )?([a-z_]+): expected .*?, got (.*)$", text)
        if not m:
            items.append(text)
            continue
        got = m[3].strip()
        got = got[1:got.index(")")] if got.startswith("(") and ")" in got else \
            re.split(r"[,;]\s|\s\(|\s\[|\s—", got)[0]
        got = got.replace(" ", "-")
        items.append(f"{m[1] + ':' if m[1] else ''}{m[2]}={got}")
    if case.get("error"):
        items.append(f"error={case['error']}")
    return " ".join(items)


def run_rows(report):
    rows = {}
    for c in report["cases"]:
        sig = signature(c)
        # An unsupported case stays a row whether the runner counts it failed or not.
        if not c.get("passed") or sig == "unsupported":
            rows[(c["scenario"], c["mode"])] = sig
    return rows


ROW = re.compile(r"^\|\s*([a-z0-9-]+)\s*\|\s*([a-z]+)\s*\|\s*`([^`]*)`\s*\|")


def doc_rows(text):
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows[(m[1], m[2])] = m[3]
    return rows


def compare(doc, run):
    """Lines saying how the run differs from the page (empty when they agree)."""
    out = []
    for key in sorted(set(doc) | set(run)):
        scen, mode = key
        if key not in run:
            out.append(f"FIXED OR GONE  {scen} [{mode}]: the page says `{doc[key]}`, the run passed it")
        elif key not in doc:
            out.append(f"NEW DIFFERENCE {scen} [{mode}]: `{run[key]}` (not in the page)")
        elif doc[key] != run[key]:
            out.append(f"CHANGED        {scen} [{mode}]: the page says `{doc[key]}`, the run shows `{run[key]}`")
    return out


def run_library(report_path, paths, jobs=2, timeout=300, log_path=None):
    """tools/zonemta/run.sh -j JOBS --json REPORT PATHS...; returns (report, stdout)."""
    env = dict(os.environ, STSTEST_NODE=node_path())
    r = subprocess.run([str(RUN), "-j", str(jobs), "--json", str(report_path), *map(str, paths)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    if log_path:
        pathlib.Path(log_path).write_text(r.stdout + r.stderr)
    if r.returncode not in (0, 1) or not pathlib.Path(report_path).exists():
        raise RuntimeError(f"run.sh exited {r.returncode}: {r.stderr[-2000:]}")
    return json.loads(pathlib.Path(report_path).read_text()), r.stdout


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: peer_zonemta.py REPORT.json  (from tools/zonemta/run.sh --json)")
    rows = run_rows(json.loads(pathlib.Path(sys.argv[1]).read_text()))
    for (scen, mode), sig in sorted(rows.items()):
        print(f"| {scen} | {mode} | `{sig}` |")
