"""A full disk under the store: a real small tmpfs filled up (as root), and a simulated ``ENOSPC`` that
runs anywhere.

On the tmpfs, real ``shiol update-data`` processes meet, in turn: no room even for the commit (refused,
nothing written); room for the commit but not the snapshot copy (committed, the snapshot stale: exit 5
with both facts); a process SIGKILLed between commit and publish (its temp copy left to fill the disk);
then the next write, which removes that dead copy, republishes, and leaves store and snapshot equal.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fakesources import NEWER_DRAWS, NyServer, history_draws
from service_support import scheduler_env

from shiol_lib.errors import SnapshotStaleError

pytestmark = pytest.mark.faults("disk-full")

DISK_BYTES = 8 * 1024 * 1024  # the tmpfs: a seeded store (~2 MB) and its snapshot (~2 MB) fit, with room
COMMIT_ROOM = 400 * 1024  # free space for the commit's log, not for a snapshot copy of the store
CRASH = """
import os, signal, sys
real_replace = os.replace
def replace(src, dst):
    if str(dst).endswith("shiol.snapshot.duckdb"):
        os.kill(os.getpid(), signal.SIGKILL)  # after the commit and the temp copy, before the rename
    return real_replace(src, dst)
os.replace = replace
from shiol_lib.cli.main import cli
cli(sys.argv[1:])
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES mounted in ``tmp_path`` (skipped where mounting is not permitted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the simulated ENOSPC case runs instead")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({mounted.stderr.strip() or mounted.returncode}); "
                    "the simulated ENOSPC case runs instead")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _shiol(home: Path, *args: str, ny: str = "http://127.0.0.1:9", script: str | None = None
           ) -> subprocess.CompletedProcess:
    code = ["-c", script] if script else ["-m", "shiol_lib.cli"]
    return subprocess.run([sys.executable, *code, *args], env=scheduler_env(home, SHIOL_NY_BASE_URL=ny),
                          capture_output=True, text=True, timeout=180)


def _fill(disk: Path, leave: int) -> None:
    """Fill the disk with ``filler`` until ``leave`` bytes are free."""
    (disk / "filler").unlink(missing_ok=True)
    usage = shutil.disk_usage(disk)
    with (disk / "filler").open("wb") as out:
        out.write(b"\0" * max(0, usage.free - leave))


def _rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _digest(path: Path) -> tuple[str, int]:
    """(checksum of every draw but fetched_at, data_updates rows) of a DuckDB file."""
    draws = _rows(path, "SELECT * EXCLUDE (fetched_at) FROM draws ORDER BY draw_date")
    return hashlib.sha256(repr(draws).encode()).hexdigest(), _rows(path, "SELECT count(*) FROM data_updates")[0][0]


def test_a_full_tmpfs_reports_commit_and_stale_snapshot_and_the_next_write_cleans_up(small_disk, fault_cases):
    fault_cases(4)  # no room to commit; room to commit only; a crash between commit and publish; the next write
    home, var = small_disk / "home", small_disk / "home" / "var"
    store, snapshot = var / "shiol.duckdb", var / "shiol.snapshot.duckdb"
    marker = var / "shiol.snapshot.duckdb.stale"
    seeded = _shiol(home, "update-data", "--offline")
    assert seeded.returncode == 0, seeded.stderr
    seeded_digest = _digest(store)
    with NyServer([*history_draws(), *NEWER_DRAWS]) as ny:
        # 1. No room even for the commit: refused, nothing written, the snapshot still current.
        _fill(small_disk, 0)
        full = _shiol(home, "update-data", ny=ny.url)
        assert full.returncode == 5, full.stderr
        assert "could not be committed" in full.stderr and "nothing of it was written" in full.stderr, full.stderr
        assert "Traceback" not in full.stderr
        (small_disk / "filler").unlink()
        assert _digest(store) == seeded_digest and not marker.exists()
        # 2. Room for the commit, not for the snapshot copy: both facts, exit 5, no temp file left.
        _fill(small_disk, COMMIT_ROOM)
        stale = _shiol(home, "update-data", ny=ny.url)
        assert stale.returncode == 5, stale.stderr
        assert "was committed to the store" in stale.stderr and "could not be republished" in stale.stderr
        assert "No space left on device" in stale.stderr and "Traceback" not in stale.stderr, stale.stderr
        assert marker.exists() and not list(var.glob("*.tmp"))
    (small_disk / "filler").unlink()
    committed = _rows(store, "SELECT draw_date FROM draws ORDER BY draw_date DESC LIMIT 3")
    assert sorted(d for (d,) in committed) == [d.draw_date for d in NEWER_DRAWS]  # the commit landed
    assert _digest(snapshot) == seeded_digest  # the snapshot is the stale one the marker says it is
    # 3. A process killed between commit and publish: its temp copy stays behind, the marker stays.
    crashed = _shiol(home, "update-data", "--offline", script=CRASH)
    assert crashed.returncode == -9, crashed.stderr
    [dead_temp] = var.glob("shiol.snapshot.duckdb.*.tmp")
    assert marker.exists()
    # 4. The disk filled again around the dead copy: the next write removes it and republishes.
    _fill(small_disk, COMMIT_ROOM)
    after = _shiol(home, "update-data", "--offline")
    assert after.returncode == 0, after.stderr
    assert not dead_temp.exists() and not list(var.glob("*.tmp")) and not marker.exists()
    (small_disk / "filler").unlink()
    assert _digest(snapshot) == _digest(store)  # nothing corrupted: both open, and they agree
    # data_updates: the crashed update's row and the last one's. The update of step 2 recorded none: its
    # SnapshotStaleError ended it after its draws were committed (reported, not fixed here).
    assert _digest(store)[1] == seeded_digest[1] + 2


def test_a_simulated_enospc_at_publish_says_both_facts_and_marks_the_snapshot_stale(store, monkeypatch):
    real_replace = os.replace

    def disk_full(src, dst):
        if str(dst) == str(store.snapshot_path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(SnapshotStaleError) as caught, store.transaction() as conn:
        conn.execute("CREATE TABLE committed_anyway (x INTEGER)")
    message = str(caught.value)
    assert "was committed to the store" in message and "could not be republished" in message
    assert "No space left on device" in message
    assert store.stale_marker.exists() and "publishing failed" in store.stale_marker.read_text()
    assert not list(store.snapshot_path.parent.glob("*.tmp"))  # no temp file keeps the disk full
    monkeypatch.setattr(os, "replace", real_replace)
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM committed_anyway").fetchone() == (0,)  # it was committed
    with store.transaction() as conn:
        conn.execute("CREATE TABLE next_write (x INTEGER)")
    assert not store.stale_marker.exists()  # the next write republished it
