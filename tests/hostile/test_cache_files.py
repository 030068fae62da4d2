"""A hostile file system under the policy cache (issue 14).

* A full disk with an existing cache used to read "reading the journal mode: disk I/O
  error [SQLite 4874]" and left a 3-byte -shm (and an empty -wal) behind. It says "disk
  full" now, and a failed open removes what it created.
* A symbolic link as the cache file used to be followed, turning its (empty) target
  into an SQLite database. It is refused, saying so.

What the user sees (README, "Options of send and check"): an unusable `--cache FILE`
stops the run before anything is sent, exit 65; an unusable default cache is a WARNING
line in the transcript and the run goes on without a cache.
"""
import errno
import hashlib
import os
import subprocess

import pytest

from hostile_run import TIMEOUT, assert_nothing_in_clear, run_sender, world_args

CACHE_BUSY_TIMEOUT = 5  # seconds: sender/cache.h STS_CACHE_BUSY_TIMEOUT_MS

CACHE_REFUSED = 65  # sysexits EX_DATAERR: --cache FILE unusable


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fill(directory):
    """Write into directory until the file system says ENOSPC."""
    fd = os.open(directory / "fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


@pytest.fixture
def small_fs(tmp_path):
    """A 512 KiB tmpfs mounted for this test (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill it up needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def valid_world(world_factory, src_dir):
    return world_factory(src_dir / "scenarios" / "valid-enforce.yaml")


def test_disk_full_with_existing_cache(ststest_bin, world_factory, src_dir, small_fs):
    cache = small_fs / "policy-cache.sqlite"
    w = valid_world(world_factory, src_dir)
    first = run_sender(ststest_bin, *world_args(w, cache=cache))
    assert first.result["outcome"] == "delivered" and first.returncode == 0, first.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == ["policy-cache.sqlite"]
    before = digest(cache)
    fill(small_fs)

    run = run_sender(ststest_bin, *world_args(w, cache=cache), results=False)
    obs = w.stop()
    assert run.returncode == CACHE_REFUSED, run.stderr
    assert run.doc is None  # stopped before any recipient: no JSON document
    # Bounded: on a full tmpfs SQLite may answer the WAL set-up with SQLITE_BUSY rather
    # than SQLITE_FULL (seen once in a fresh Debian root: 5.03 s), and the cache then
    # retries for its busy timeout (STS_CACHE_BUSY_TIMEOUT_MS) before naming the disk.
    assert run.elapsed < TIMEOUT + CACHE_BUSY_TIMEOUT, run.stderr
    assert f"ERROR --cache {cache}: policy cache {cache}: " in run.stderr
    assert ": disk full (" in run.stderr and "(free some space, or give another --cache file)" \
        in run.stderr, run.stderr
    assert "disk I/O error [SQLite" not in run.stderr.replace("disk full (disk I/O error)", "")
    # Nothing left behind, the cache untouched, and the second run sent nothing.
    assert sorted(p.name for p in small_fs.iterdir()) == ["fill", "policy-cache.sqlite"]
    assert digest(cache) == before
    assert len(obs["smtp_sessions"]) == 1
    assert_nothing_in_clear(obs)


def test_disk_full_new_cache(ststest_bin, world_factory, src_dir, small_fs):
    fill(small_fs)
    cache = small_fs / "new.sqlite"
    w = valid_world(world_factory, src_dir)
    run = run_sender(ststest_bin, *world_args(w, cache=cache), results=False)
    obs = w.stop()
    assert run.returncode == CACHE_REFUSED, run.stderr
    assert ": disk full (" in run.stderr, run.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == ["fill"]
    assert obs["smtp_sessions"] == []


def test_disk_full_default_cache_warns_and_goes_on(ststest_bin, world_factory, src_dir,
                                                   small_fs):
    """The default cache on a full disk: a WARNING, the run goes on without a cache and
    delivers over verified TLS (the world's policy is enforce)."""
    cache = small_fs / "ststest" / "policy-cache.sqlite"
    cache.parent.mkdir()
    fill(small_fs)
    w = valid_world(world_factory, src_dir)
    args = [a for a in world_args(w, cache="x") if a not in ("--cache", "x")]
    run = run_sender(ststest_bin, *args, env={"XDG_CACHE_HOME": str(small_fs)})
    obs = w.stop()
    assert "WARNING the default policy cache is unusable, running without a cache: " \
        in run.stderr
    assert ": disk full (" in run.stderr, run.stderr
    assert run.result["outcome"] == "delivered" and run.returncode == 0
    assert run.result["cache"]["enabled"] is False
    [mx] = run.result["mx"]
    assert mx["tls"]["verified"] is True
    assert_nothing_in_clear(obs)
    assert sorted(p.name for p in cache.parent.iterdir()) == []


def symlinked_cache(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"")
    link = tmp_path / "cache" / "policy-cache.sqlite"
    link.parent.mkdir()
    link.symlink_to(target)
    return target, link


def test_symlink_as_cache_file_refused(ststest_bin, world_factory, src_dir, tmp_path):
    target, link = symlinked_cache(tmp_path)
    w = valid_world(world_factory, src_dir)
    run = run_sender(ststest_bin, *world_args(w, cache=link), results=False)
    obs = w.stop()
    assert run.returncode == CACHE_REFUSED, run.stderr
    assert run.elapsed < TIMEOUT
    assert (f"ERROR --cache {link}: {link} is a symbolic link; refusing it as the policy "
            f"cache: a link could point the cache at any file this user may write (it "
            f"points to {target})") in run.stderr
    assert target.read_bytes() == b""
    assert sorted(p.name for p in link.parent.iterdir()) == ["policy-cache.sqlite"]
    assert obs["smtp_sessions"] == [] and obs["dns"] == []


def test_symlink_as_default_cache_warns_and_goes_on(ststest_bin, world_factory, src_dir,
                                                    tmp_path):
    target, link = symlinked_cache(tmp_path)
    link.parent.rename(tmp_path / "ststest")
    link = tmp_path / "ststest" / "policy-cache.sqlite"
    w = valid_world(world_factory, src_dir)
    args = [a for a in world_args(w, cache="x") if a not in ("--cache", "x")]
    run = run_sender(ststest_bin, *args, env={"XDG_CACHE_HOME": str(tmp_path)})
    obs = w.stop()
    assert (f"WARNING the default policy cache is unusable, running without a cache: {link} "
            "is a symbolic link; refusing it as the policy cache") in run.stderr
    assert run.result["outcome"] == "delivered" and run.returncode == 0
    assert run.result["cache"]["enabled"] is False
    assert run.result["mx"][0]["tls"]["verified"] is True
    assert_nothing_in_clear(obs)
    assert target.read_bytes() == b""
