"""The reader snapshot: republished after analyst-visible writes only, marked stale when it lags, and
never leaves temp files of dead processes behind."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime

import duckdb
import pytest

from shiol_lib.errors import SnapshotStaleError
from shiol_lib.store import jobs as job_table
from shiol_lib.store.core import connect_snapshot


def _published_at(store) -> datetime:
    with duckdb.connect(str(store.snapshot_path), read_only=True) as conn:
        return conn.execute("SELECT published_at FROM snapshot_info").fetchone()[0]


def test_the_snapshot_says_what_it_copies(store) -> None:
    with connect_snapshot(store.snapshot_path) as conn:
        path, version = conn.execute("SELECT store_path, schema_version FROM snapshot_info").fetchone()
    assert path == str(store.path) and version == store.schema_version()
    assert not store.stale_marker.exists()


def test_a_heartbeat_does_not_republish_the_snapshot(store) -> None:
    before = _published_at(store)
    job_table.heartbeat(store, "pipeline", "20240702T032900Z-a1b2c3", datetime.now(UTC))
    assert _published_at(store) == before
    with store.transaction() as conn:
        conn.execute("CREATE TABLE analyst_visible (x INTEGER)")
    assert _published_at(store) > before


def test_a_publish_that_fails_after_the_commit_says_both_facts_and_marks_the_snapshot_stale(
        store, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_temp_files_of_dead_processes_are_removed_at_the_next_write(store) -> None:
    leftover = store.snapshot_path.with_name(f"{store.snapshot_path.name}.999999999.tmp")
    leftover.write_bytes(b"x" * 1024)
    mine = store.snapshot_path.with_name(f"{store.snapshot_path.name}.{os.getppid()}.tmp")
    mine.write_bytes(b"a live process's copy in progress")
    with store.transaction() as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    assert not leftover.exists() and mine.exists()
