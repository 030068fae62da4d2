"""A hostile file system under the TLS report store (issue 12), as under the policy
cache (test_cache_files.py): a full disk says "disk full" and a failed open leaves
nothing behind; a symbolic link is refused. An unusable `--report-store FILE` stops
the run before anything is sent (exit 65); an unusable default store is a WARNING and
the delivery goes on, unrecorded.
"""
import hashlib

from hostile_run import TIMEOUT, assert_nothing_in_clear, run_sender, world_args
from test_cache_files import fill, small_fs, valid_world  # noqa: F401 (small_fs: fixture)

STORE_REFUSED = 65


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_disk_full_with_existing_store(ststest_bin, world_factory, src_dir, small_fs):
    store = small_fs / "tlsrpt-store.sqlite"
    w = valid_world(world_factory, src_dir)
    first = run_sender(ststest_bin, *world_args(w), "--report-store", str(store))
    assert first.result["outcome"] == "delivered" and first.returncode == 0, first.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == ["tlsrpt-store.sqlite"]
    before = digest(store)
    fill(small_fs)
    run = run_sender(ststest_bin, *world_args(w), "--report-store", str(store), results=False)
    obs = w.stop()
    assert run.returncode == STORE_REFUSED, run.stderr
    assert run.elapsed < TIMEOUT
    assert f"ERROR --report-store {store}: report store {store}: " in run.stderr
    assert ": disk full (" in run.stderr and "give another --report-store file" in run.stderr, \
        run.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == ["fill", "tlsrpt-store.sqlite"]
    assert digest(store) == before
    assert len(obs["smtp_sessions"]) == 1  # the second run sent nothing
    assert_nothing_in_clear(obs)


def test_disk_full_default_store_warns_and_goes_on(ststest_bin, world_factory, src_dir,
                                                   small_fs):
    (small_fs / "ststest").mkdir()
    fill(small_fs)
    w = valid_world(world_factory, src_dir)
    run = run_sender(ststest_bin, *world_args(w), env={"XDG_CACHE_HOME": str(small_fs)})
    obs = w.stop()
    assert "WARNING the default TLS report store is unusable, recording no sessions: " \
        in run.stderr, run.stderr
    assert run.result["outcome"] == "delivered" and run.returncode == 0
    assert run.result["mx"][0]["tls"]["verified"] is True
    assert_nothing_in_clear(obs)
    assert sorted(p.name for p in (small_fs / "ststest").iterdir()) == []


def test_symlink_as_store_refused(ststest_bin, world_factory, src_dir, tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"")
    link = tmp_path / "store.sqlite"
    link.symlink_to(target)
    w = valid_world(world_factory, src_dir)
    run = run_sender(ststest_bin, *world_args(w), "--report-store", str(link), results=False)
    obs = w.stop()
    assert run.returncode == STORE_REFUSED, run.stderr
    assert (f"ERROR --report-store {link}: {link} is a symbolic link; refusing it as the "
            "report store") in run.stderr, run.stderr
    assert target.read_bytes() == b""
    assert obs["smtp_sessions"] == [] and obs["dns"] == []
