"""The policy cache under abuse (issue 14): a cache file of random bytes, one cut short, one
the user may only read, a directory in its place, and senders that share one cache and
are killed with SIGKILL in the middle of their work, round after round. (A symbolic
link and a full disk are in test_cache_files.py.)

What the user sees (README, "Options of send and check"): a `--cache FILE` that cannot
be used stops the run before anything is sent, with exit 65 and one ERROR line that
names the file and what is wrong with it; the file is left as it was. A cache that
senders died writing to is read by the next run as if nothing had happened.
"""
import hashlib
import os
import pathlib
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

import pytest

from hostile_run import RCPT, TIMEOUT, run_sender, world_args

CACHE_REFUSED = 65  # sysexits EX_DATAERR: --cache FILE unusable
NOBODY = 65534


@pytest.fixture
def world(world_factory, src_dir):
    return world_factory(src_dir / "scenarios" / "valid-enforce.yaml")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def good_cache(ststest_bin, world, path):
    """A cache holding the world's enforce policy, written by a real run."""
    run = run_sender(ststest_bin, *world_args(world, cache=path))
    assert run.returncode == 0 and run.result["policy"]["source"] == "fetched", run.stderr
    return path


def assert_refused(run, cache, what):
    """Exit 65, no JSON, one ERROR line naming the file and `what`, before any DNS."""
    assert run.returncode == CACHE_REFUSED, run.stderr
    assert run.doc is None
    assert run.elapsed < TIMEOUT
    assert f"ERROR --cache {cache}: policy cache {cache}: {what}" in run.stderr, run.stderr
    assert "DNS " not in run.stderr


def test_random_bytes(ststest_bin, world, tmp_path):
    """8 KiB of random bytes where the cache should be. The user sees:
    ERROR --cache FILE: policy cache FILE: reading the journal mode: file is not a
    database [SQLite 26] (not an SQLite database or damaged; it is left untouched: move
    it aside or give another --cache file)"""
    cache = tmp_path / "random.sqlite"
    cache.write_bytes(random.Random(14).randbytes(8192))
    before = digest(cache)
    run = run_sender(ststest_bin, *world_args(world, cache=cache), results=False)
    assert_refused(run, cache, "reading the journal mode: file is not a database [SQLite 26] "
                   "(not an SQLite database or damaged; it is left untouched: move it aside "
                   "or give another --cache file)")
    assert digest(cache) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.sqlite"]
    assert world.stop()["smtp_sessions"] == []


# Where a good cache is cut, and what the user sees then.
CUTS = {
    # Inside the 16-octet magic string: not recognisable as SQLite any more.
    10: "reading the journal mode: file is not a database [SQLite 26] (not an SQLite "
        "database or damaged; it is left untouched: move it aside or give another --cache "
        "file)",
    # Inside the 100-octet header, and inside the first page: the header says more than
    # there is.
    50: "reading the journal mode: database disk image is malformed [SQLite 11] (not an "
        "SQLite database or damaged; it is left untouched: move it aside or give another "
        "--cache file)",
    3000: "reading the journal mode: database disk image is malformed [SQLite 11] (not an "
          "SQLite database or damaged; it is left untouched: move it aside or give another "
          "--cache file)",
}


@pytest.mark.parametrize("cut", CUTS)
def test_truncated(ststest_bin, world, tmp_path, cut):
    """A good cache cut short. The user sees: ERROR --cache FILE: policy cache FILE: ...
    (the words in CUTS), and the file is left as it was."""
    good = good_cache(ststest_bin, world, tmp_path / "good.sqlite")
    cache = tmp_path / "cut.sqlite"
    cache.write_bytes(good.read_bytes()[:cut])
    before = digest(cache)
    run = run_sender(ststest_bin, *world_args(world, cache=cache), results=False)
    assert_refused(run, cache, CUTS[cut])
    assert digest(cache) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("cut.sqlite-")]


def test_a_directory(ststest_bin, world, tmp_path):
    """A directory where the cache file should be. The user sees:
    ERROR --cache DIR: policy cache DIR: cannot open or create it: not a regular file"""
    cache = tmp_path / "dir.sqlite"
    cache.mkdir()
    run = run_sender(ststest_bin, *world_args(world, cache=cache), results=False)
    assert_refused(run, cache, "cannot open or create it: not a regular file")
    assert list(cache.iterdir()) == []


def test_read_only(ststest_bin, world, tmp_path):
    """A good cache the user may only read (0444; run by root, the sender runs as
    nobody, to whom the file is read-only). The user sees:
    ERROR --cache FILE: policy cache FILE: cannot open it for reading and writing:
    Permission denied (check its permissions)"""
    # A directory nobody can enter (pytest's tmp_path is private to root), with the
    # world's CA certificate in it.
    home = pathlib.Path(tempfile.mkdtemp(prefix="ststest-ro-"))
    try:
        cache = good_cache(ststest_bin, world, home / "ro.sqlite")
        ca = home / "ca.pem"
        shutil.copy(world.ready["ca_file"], ca)
        os.chmod(ca, 0o444)
        os.chmod(cache, 0o444)
        os.chmod(home, 0o755)
        before = digest(cache)
        args = [a if a != world.ready["ca_file"] else str(ca)
                for a in world_args(world, cache=cache)]
        wrapper = ()
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if not setpriv:
                pytest.fail("setpriv (util-linux) is needed to run the sender as nobody")
            wrapper = (setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
        run = run_sender(ststest_bin, *args, results=False, wrapper=wrapper)
        assert_refused(run, cache, "cannot open it for reading and writing: Permission "
                       "denied (check its permissions)")
        assert digest(cache) == before
        assert sorted(p.name for p in home.iterdir()) == ["ca.pem", "ro.sqlite"]
    finally:
        shutil.rmtree(home)


ROUNDS = 30
SENDERS = 4


def test_kill_9_concurrent_senders(ststest_bin, world, tmp_path):
    """30 rounds of 4 senders sharing one cache, each killed with SIGKILL at a random
    moment within the time one sender takes (while it reads DNS, fetches, writes the
    cache or delivers; a sender that finished first is not killed). Each round judges
    the cache 1.5 days later (--now), past the policy's max_age of one day, so that
    every sender refetches and writes. Then SQLite's integrity_check says "ok", and the
    user sees the next run work as if nothing had happened: delivered over verified
    TLS from the cache, no WARNING or ERROR about the cache."""
    cache = tmp_path / "shared.sqlite"
    good_cache(ststest_bin, world, cache)
    rnd = random.Random(14)
    base = int(time.time())
    head = [ststest_bin, "send", "--json", "--timeout", "5", "--time-limit", "10"]
    argv = [*head, *world_args(world, cache=cache)]
    # How long one sender takes here and now (a fetch and a cache write, as in every
    # round: the rounds are 1.5 days apart, past max_age), on a cache of its own:
    # the kills are spread over that span, so that some senders die early, some while
    # writing, some finish, whatever the machine's load.
    t0 = time.monotonic()
    subprocess.run([*head, *world_args(world, cache=tmp_path / "timing.sqlite"), RCPT],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    span = max(0.02, time.monotonic() - t0)
    killed = finished = 0
    for r in range(ROUNDS):
        now = str(base + int((r + 1) * 1.5 * 86400))
        procs = [subprocess.Popen([*argv, "--now", now, RCPT], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(SENDERS)]
        t0 = time.monotonic()
        for p, at in zip(procs, sorted(rnd.uniform(0, span) for _ in procs)):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=20)
            if p.returncode == -signal.SIGKILL:
                killed += 1
            else:
                finished += 1
    # Both kinds: the test killed senders, and some got far enough to write.
    assert killed >= ROUNDS and finished >= 1, (killed, finished)
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    now = str(base + int((ROUNDS + 1) * 1.5 * 86400))
    run = run_sender(ststest_bin, *world_args(world, cache=cache), "--now", now)
    assert run.returncode == 0 and run.result["outcome"] == "delivered", run.stderr
    assert run.result["policy"]["mode"] == "enforce"
    assert run.result["mx"][0]["tls"]["verified"] is True
    assert "WARNING" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    then = run_sender(ststest_bin, *world_args(world, cache=cache), "--now", now)
    assert then.result["policy"]["source"] == "cache", then.stderr
    print(f"{killed} senders killed, {finished} finished")
