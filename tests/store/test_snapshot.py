"""The reader snapshot: republished after analyst-visible writes only, marked stale when it lags, and
never leaves temp files of dead processes behind (a publish that fails after the commit is in
tests/faults/test_disk_full.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import duckdb

from shiol_lib import steps
from shiol_lib.jobs.run import kernel_environment
from shiol_lib.settings import load_settings, settings_to_env
from shiol_lib.store import jobs as job_table
from shiol_lib.store import open_store
from shiol_lib.store.core import JOB_PUBLISHES_ENV
from shiol_lib.store.snapshot import connect_snapshot


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


def test_temp_files_of_dead_processes_are_removed_at_the_next_write(store) -> None:
    leftover = store.snapshot_path.with_name(f"{store.snapshot_path.name}.999999999.tmp")
    leftover.write_bytes(b"x" * 1024)
    mine = store.snapshot_path.with_name(f"{store.snapshot_path.name}.{os.getppid()}.tmp")
    mine.write_bytes(b"a live process's copy in progress")
    with store.transaction() as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    assert not leftover.exists() and mine.exists()


def test_a_step_kernels_writes_wait_for_the_job_to_publish(store) -> None:
    kernel = open_store(store.path, store.snapshot_path, lock_timeout_s=5, defer_publish=True)
    before = _published_at(store)
    with kernel.transaction() as conn:
        conn.execute("CREATE TABLE step_output AS SELECT 7 AS x")
    assert _published_at(store) == before  # not republished by the step's own write...
    assert store.stale_marker.exists()  # ...and readers are told the snapshot is behind
    store.publish()  # the job, once the step has ended
    assert _published_at(store) > before and not store.stale_marker.exists()
    with connect_snapshot(store.snapshot_path) as conn:
        assert conn.execute("SELECT x FROM step_output").fetchall() == [(7,)]


def test_only_a_jobs_step_kernels_defer_publishing(tmp_path, monkeypatch) -> None:
    env = kernel_environment(load_settings({"SHIOL_HOME": str(tmp_path)}))
    assert env[JOB_PUBLISHES_ENV] == "1"
    assert {k: v for k, v in env.items() if k.startswith("SHIOL_")} == settings_to_env(
        load_settings({"SHIOL_HOME": str(tmp_path)})
    )  # the kernel's settings stay exactly the job's
    monkeypatch.setenv(JOB_PUBLISHES_ENV, "1")
    assert steps.open_step_store(str(tmp_path / "kernel.duckdb")).defer_publish
    monkeypatch.delenv(JOB_PUBLISHES_ENV)
    assert not steps.open_step_store(str(tmp_path / "lab.duckdb")).defer_publish  # JupyterLab, bench, tests


def test_writes_in_a_deferred_block_are_published_once_at_its_end(store) -> None:
    before = _published_at(store)
    with store.deferred_publishing():
        for name in ("first", "second"):
            with store.transaction() as conn:
                conn.execute(f"CREATE TABLE {name} (x INTEGER)")
            assert _published_at(store) == before and store.stale_marker.exists()
    after = _published_at(store)
    assert after > before and not store.stale_marker.exists()
    with store.deferred_publishing(publish_at_end=False), store.transaction() as conn:  # a step's start
        conn.execute("CREATE TABLE third (x INTEGER)")
    assert _published_at(store) == after and store.stale_marker.exists()
    with store.transaction() as conn:
        conn.execute("CREATE TABLE fourth (x INTEGER)")
    with connect_snapshot(store.snapshot_path) as conn:
        tables = {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"first", "second", "third", "fourth"} <= tables and not store.stale_marker.exists()
