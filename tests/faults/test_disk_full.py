"""A full disk under the store and the archive: a real small tmpfs filled up (as root), and simulated
``ENOSPC`` cases that run anywhere.

On the tmpfs, real ``shiol update-data`` processes meet, in turn: no room even for the commit (refused,
nothing written); room for the commit but not the snapshot copy (committed, the snapshot stale: exit 5
with both facts); a process SIGKILLed between commit and publish (its temp copy left to fill the disk);
then the next write, which removes that dead copy, republishes, and leaves store and snapshot equal.
A real ``shiol run pipeline`` with a few MB free ends ``failed`` with error class ``disk_full`` and its
ledger entry; recovery of a dead run whose folder never existed waits, on the full tmpfs, until it can
write that run's ledger entry. Simulated (a process cannot be stopped there on a real disk at will): an
``ENOSPC`` at the very manifest write that opens a run, and a close that reached the ledger but whose
store commit failed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from archive_support import running_row
from fakesources import NEWER_DRAWS, NyServer, history_draws
from service_support import scheduler_env

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.verify import verify_archive
from shiol_lib.domain.runs import ErrorClass, RunStatus
from shiol_lib.errors import ArchiveError, SnapshotStaleError, StoreError
from shiol_lib.jobs.catalog import Step
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.jobs.recovery import close_dead_runs
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import Store, open_store
from shiol_lib.store import runs as run_table

pytestmark = pytest.mark.faults("disk-full")

DISK_BYTES = 8 * 1024 * 1024  # the tmpfs: a seeded store (~2 MB) and its snapshot (~2 MB) fit, with room
RUN_DISK_BYTES = 24 * 1024 * 1024
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


def _mounted(tmp_path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted in ``tmp_path`` (skipped where mounting is not permitted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the simulated ENOSPC cases run instead")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"mount -t tmpfs is not permitted here ({mounted.stderr.strip() or mounted.returncode}); "
            "the simulated ENOSPC cases run instead"
        )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES mounted in ``tmp_path``."""
    yield from _mounted(tmp_path, DISK_BYTES)


@pytest.fixture
def run_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of RUN_DISK_BYTES: a store that grows with a run, its snapshot and a copy of it fit when emptied."""
    yield from _mounted(tmp_path, RUN_DISK_BYTES)


def _shiol(
    home: Path, *args: str, ny: str = "http://127.0.0.1:9", script: str | None = None
) -> subprocess.CompletedProcess:
    code = ["-c", script] if script else ["-m", "shiol_lib.cli"]
    return subprocess.run(
        [sys.executable, *code, *args],
        env=scheduler_env(home, SHIOL_NY_BASE_URL=ny),
        capture_output=True,
        text=True,
        timeout=180,
    )


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


REPO = Path(__file__).resolve().parents[2]


def _settings(home: Path) -> Settings:
    return load_settings({"SHIOL_HOME": str(home), "SHIOL_NOTEBOOKS_DIR": str(REPO / "notebooks")})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _verify(settings: Settings, store: Store) -> list[str]:
    result = verify_archive(
        settings.runs_dir, anchor=run_table.ledger_anchor(store), runs=run_table.archived_runs(store)
    )
    return [str(problem) for problem in result.problems]


def _dead_running_row(settings: Settings, store: Store, *, folder: Path | None = None) -> run_table.RunRow:
    """A ``running`` row whose process is gone and whose run folder was never created."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    run_id = archive.new_run_id(started)
    folder = folder or archive.run_dir(settings.runs_dir, "pipeline", run_id, started)
    row = running_row(run_id, started, folder, pid=_dead_pid(), host=socket.gethostname())
    run_table.insert_run(store, row)
    return row


@pytest.mark.slow
@pytest.mark.parametrize(("free_mb", "exits"), [(5, {6}), (3, {6, 7})])
def test_a_pipeline_run_with_a_few_mb_free_ends_failed_disk_full_with_its_ledger_entry(
    run_disk, fault_cases, free_mb, exits
):
    fault_cases(2)  # the run on the full disk; the archive and verify after room is made
    small_disk, home = run_disk, run_disk / "home"
    assert _shiol(home, "update-data", "--offline").returncode == 0
    _fill(small_disk, free_mb * 1024 * 1024)
    run = _shiol(home, "run", "pipeline", "--offline")
    # 6: closed failed with its ledger entry. 7 (3 MB: the growing store took the archive's last byte): the
    # row keeps the cause and stays open, and the next recovery closes it so. A clear message, no traceback.
    assert run.returncode in exits, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert "disk full: no space left on the device holding " + str(home) in run.stderr
    assert "free space on that device" in run.stderr and "shiol runs prune" in run.stderr
    (small_disk / "filler").unlink()
    settings = _settings(home)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    [opened] = run_table.list_runs(store)
    assert opened.error_class == ErrorClass.DISK_FULL  # the cause is kept, whichever way it ended
    close_dead_runs(settings, store)  # what the next run does first: the cause survives it
    [row] = run_table.list_runs(store)
    assert (row.status, row.error_class) == (RunStatus.FAILED, ErrorClass.DISK_FULL), row
    manifest = archive.read_manifest(Path(row.archive_dir))
    assert (manifest.status, manifest.error_class) == (RunStatus.FAILED, ErrorClass.DISK_FULL)
    assert [e["run_id"] for e in ledger.read_ledger(settings.runs_dir)] == [row.run_id]
    verified = _shiol(home, "runs", "verify")
    assert verified.returncode == 0 and "archive intact" in verified.stdout, verified.stdout + verified.stderr


def test_recovery_on_a_full_disk_waits_and_then_writes_the_ledger_entry(small_disk, fault_cases):
    fault_cases(2)  # recovery with no room; recovery once there is room
    home = small_disk / "home"
    assert _shiol(home, "update-data", "--offline").returncode == 0
    settings = _settings(home)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    row = _dead_running_row(settings, store)  # it died before its folder was made
    _fill(small_disk, 0)
    assert close_dead_runs(settings, store) == []  # nothing can be written: the row stays open, not half-closed
    assert run_table.get_run(store, row.run_id).status == RunStatus.RUNNING
    (small_disk / "filler").unlink()
    assert [r.run_id for r in close_dead_runs(settings, store)] == [row.run_id]
    closed = run_table.get_run(store, row.run_id)
    assert closed.status == RunStatus.CRASHED
    manifest = archive.read_manifest(Path(row.archive_dir))  # a minimal manifest in the folder it never made
    assert manifest.status == RunStatus.CRASHED and "died" in manifest.error
    assert ledger.read_ledger(settings.runs_dir)[-1]["run_id"] == row.run_id
    assert _verify(settings, store) == []  # no false alarm, now or later
    assert close_dead_runs(settings, store) == []


def test_a_run_whose_folder_never_existed_is_closed_with_a_minimal_manifest_and_verify_stays_clean(tmp_path):
    settings = _settings(tmp_path / "home")
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    row = _dead_running_row(settings, store)
    assert [r.run_id for r in close_dead_runs(settings, store)] == [row.run_id]
    [entry] = ledger.read_ledger(settings.runs_dir)
    assert (entry["run_id"], entry["status"]) == (row.run_id, "crashed")
    assert archive.read_manifest(Path(row.archive_dir)).run_id == row.run_id
    assert _verify(settings, store) == []


def test_a_simulated_enospc_at_the_opening_manifest_keeps_the_cause_for_recovery(tmp_path, monkeypatch):
    settings = _settings(tmp_path / "home")
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)

    def disk_full(directory: Path, manifest: object) -> Path:
        raise ArchiveError(f"could not write {directory}: the disk is full") from OSError(
            errno.ENOSPC, "No space left on device", str(directory / "manifest.json")
        )

    monkeypatch.setattr(archive, "write_manifest", disk_full)
    with pytest.raises(ArchiveError, match="disk full: no space left on the device holding") as caught:
        RunLifecycle.open(
            settings,
            store,
            "pipeline",
            (Step("update_data", "10_update_data.ipynb"),),
            RunContext(),
            seed=1,
            code={},
            environment={},
        )
    assert "shiol runs prune" in str(caught.value)
    monkeypatch.undo()
    [row] = run_table.list_runs(store)
    assert (row.status, row.error_class) == (RunStatus.RUNNING, ErrorClass.DISK_FULL)  # open, its cause kept
    run_table.update_run(store, row.run_id, pid=_dead_pid())  # its process exits
    assert [r.run_id for r in close_dead_runs(settings, store)] == [row.run_id]
    closed = run_table.get_run(store, row.run_id)
    assert (closed.status, closed.error_class) == (RunStatus.FAILED, ErrorClass.DISK_FULL)  # not "crashed"
    assert closed.error.startswith("disk full:")
    manifest = archive.read_manifest(Path(row.archive_dir))
    assert (manifest.status, manifest.error_class) == (RunStatus.FAILED, ErrorClass.DISK_FULL)
    assert ledger.read_ledger(settings.runs_dir)[-1]["status"] == "failed"
    assert _verify(settings, store) == []


def test_a_close_that_reached_the_ledger_but_not_the_store_is_kept_by_recovery(tmp_path, monkeypatch):
    settings = _settings(tmp_path / "home")
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    run = RunLifecycle.open(
        settings,
        store,
        "pipeline",
        (Step("update_data", "10_update_data.ipynb"),),
        RunContext(),
        seed=1,
        code={},
        environment={},
    )

    def no_room(*args: object, **kwargs: object) -> None:
        raise StoreError("the change could not be committed to the store: No space left on device")

    monkeypatch.setattr(run_table, "finish_run", no_room)  # simulated: the store's commit meets the full disk
    with pytest.raises(StoreError):
        run.close(
            RunStatus.FAILED,
            error="disk full: no space left on the device holding X",
            error_class=ErrorClass.DISK_FULL,
            results=[],
        )
    monkeypatch.undo()
    run_table.update_run(store, run.run_id, pid=_dead_pid())
    assert [r.run_id for r in close_dead_runs(settings, store)] == [run.run_id]
    closed = run_table.get_run(store, run.run_id)
    assert (closed.status, closed.error_class) == (RunStatus.FAILED, ErrorClass.DISK_FULL)
    assert [e["run_id"] for e in ledger.read_ledger(settings.runs_dir)] == [run.run_id]  # one entry, not two
    assert _verify(settings, store) == []
