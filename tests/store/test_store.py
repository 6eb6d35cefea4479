import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from shiol_lib.domain.draws import Draw
from shiol_lib.errors import StoreError, StoreLockError
from shiol_lib.store import SCHEMA_VERSION, Store, connect_snapshot, open_store

FETCHED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
JULY_1 = Draw(date(2024, 7, 1), (1, 6, 40, 51, 67), 2, 2)


def test_new_store_is_migrated_to_the_latest_schema(store):
    assert store.schema_version() == SCHEMA_VERSION
    assert store.count_draws() == 0


def test_an_older_file_is_upgraded_on_open(tmp_path):
    old = Store(tmp_path / "old.duckdb", tmp_path / "old.snapshot.duckdb")
    assert old.migrate(target=1) == 1
    old.apply_draws([JULY_1], source="test", fetched_at=FETCHED)
    with old.connect() as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "draw_conflicts" not in tables

    upgraded = open_store(tmp_path / "old.duckdb", tmp_path / "old.snapshot.duckdb")
    assert upgraded.schema_version() == SCHEMA_VERSION
    assert upgraded.count_draws() == 1  # data kept across the upgrade
    with upgraded.connect() as conn:
        assert conn.execute("SELECT count(*) FROM draw_conflicts").fetchone()[0] == 0


def test_a_newer_schema_is_refused(tmp_path):
    store = open_store(tmp_path / "db.duckdb", tmp_path / "snap.duckdb")
    with store.connect() as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    with pytest.raises(StoreError, match="newer than this workbench"):
        open_store(tmp_path / "db.duckdb", tmp_path / "snap.duckdb")


def test_apply_is_idempotent_and_conflicts_keep_the_stored_value(store, bundled_draws):
    first = store.apply_draws(bundled_draws, source="bundled", fetched_at=FETCHED)
    assert len(first.inserted) == 1647
    again = store.apply_draws(bundled_draws, source="bundled", fetched_at=FETCHED)
    assert again.inserted == [] and again.unchanged == 1647

    stored = next(d for d in bundled_draws if d.draw_date == date(2024, 6, 29))
    changed = Draw(stored.draw_date, stored.whites, stored.powerball % 26 + 1, stored.multiplier)
    result = store.apply_draws([changed, JULY_1], source="ny", fetched_at=FETCHED)
    assert result.inserted == [date(2024, 7, 1)]
    assert [(c.draw_date, c.source) for c in result.conflicts] == [(date(2024, 6, 29), "ny")]
    frame = store.read_draws()
    row = frame[frame.draw_date == "2024-06-29"].iloc[0]
    assert int(row.pb) == stored.powerball
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM draw_conflicts").fetchone()[0] == 1
    store.apply_draws([changed], source="ny", fetched_at=FETCHED)  # the same conflict is recorded once
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM draw_conflicts").fetchone()[0] == 1


def test_a_failing_transaction_writes_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO draws VALUES ('2024-07-01', 1, 6, 40, 51, 67, 2, 2, 'x', now())")
        raise RuntimeError("fault injected mid-write")
    assert store.count_draws() == 0


def test_the_check_constraint_refuses_unsorted_balls(store):
    with pytest.raises(duckdb.ConstraintException), store.transaction() as conn:
        conn.execute("INSERT INTO draws VALUES ('2024-07-01', 6, 1, 40, 51, 67, 2, 2, 'x', now())")
    assert store.count_draws() == 0


def test_snapshot_is_republished_and_an_open_reader_does_not_block_the_writer(store, bundled_draws):
    store.apply_draws(bundled_draws[:10], source="bundled", fetched_at=FETCHED)
    reader = connect_snapshot(store.snapshot_path)
    assert reader.execute("SELECT count(*) FROM draws").fetchone()[0] == 10
    store.apply_draws(bundled_draws[10:20], source="bundled", fetched_at=FETCHED)  # must not wait on the reader
    assert reader.execute("SELECT count(*) FROM draws").fetchone()[0] == 10  # the old snapshot, still readable
    reader.close()
    with connect_snapshot(store.snapshot_path) as fresh:
        assert fresh.execute("SELECT count(*) FROM draws").fetchone()[0] == 20


def test_missing_snapshot_says_how_to_make_one(tmp_path):
    with pytest.raises(StoreError, match="shiol update-data"):
        connect_snapshot(tmp_path / "nothing.duckdb")


def test_a_file_that_is_not_duckdb_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_text("this is not a database")
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(bad, tmp_path / "snap.duckdb")


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.close()
    """
)


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_waits_for_the_lock_then_writes(store, bundled_draws):
    holder = _hold_lock(store.path, 1.5)
    try:
        result = store.apply_draws(bundled_draws[:5], source="bundled", fetched_at=FETCHED)
    finally:
        holder.wait(timeout=30)
    assert len(result.inserted) == 5 and store.count_draws() == 5


def test_lock_not_released_in_time_names_the_holder(tmp_path):
    store = open_store(tmp_path / "db.duckdb", tmp_path / "snap.duckdb", lock_timeout_s=0.5)
    holder = _hold_lock(store.path, 20)
    try:
        with pytest.raises(StoreLockError) as caught:
            store.count_draws()
    finally:
        holder.kill()
        holder.wait()
    assert caught.value.holder is not None and f"PID {holder.pid}" in caught.value.holder
    assert f"PID {holder.pid}" in str(caught.value) and "SHIOL_LOCK_TIMEOUT_S" in str(caught.value)


def test_snapshot_is_the_checkpointed_file_or_else_copied_table_by_table(store, bundled_draws, monkeypatch):
    store.apply_draws(bundled_draws[:10], source="bundled", fetched_at=FETCHED)
    wal = store.path.with_name(store.path.name + ".wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed: the file alone holds every write
    with connect_snapshot(store.snapshot_path) as reader:
        assert reader.execute("SELECT count(*) FROM draws").fetchone()[0] == 10
    monkeypatch.setattr(Store, "_checkpoint", lambda self, conn: False)
    store.apply_draws(bundled_draws[10:15], source="bundled", fetched_at=FETCHED)
    with connect_snapshot(store.snapshot_path) as reader:
        assert reader.execute("SELECT count(*) FROM draws").fetchone()[0] == 15
    assert sorted(p.name for p in store.snapshot_path.parent.iterdir() if ".tmp" in p.name) == []
