"""Store helpers shared by the monitoring, health and alert tests: runs, dead letters, missed slots,
and a real second process holding the DuckDB file lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from shiol_lib.store import Store
from shiol_lib.store.runs import RunRow, insert_run

UTC = UTC
T0 = datetime(2024, 7, 1, 16, 0, tzinfo=UTC)


# --- shared helpers ------------------------------------------------------------------------------


def add_run(
    store: Store, run_id: str, job: str, status: str, *, hour: float, minutes: float = 3.0, error: str | None = None
) -> None:
    """A run of ``job`` started ``hour`` hours after T0 and, unless running, finished ``minutes`` later.

    One insert_run per run (a store write costs a snapshot republish); finish_run is exercised in
    test_a_run_finishing_moves_from_last_run_to_last_finished.
    """
    started = T0 + timedelta(hours=hour)
    failed = status not in ("running", "success", "skipped")
    insert_run(
        store,
        RunRow(
            run_id=run_id,
            job=job,
            slot=started,
            trigger="scheduled",
            status=status,
            started_at=started,
            finished_at=None if status == "running" else started + timedelta(minutes=minutes),
            error=error or (f"{status} in step fetch" if failed else None),
            error_class="fetch" if failed else None,
            target_draw_date=None,
            attempt=1,
            parent_run_id=None,
            seed=None,
            pid=None,
            host=None,
            heartbeat_at=started,
            archive_dir=None,
        ),
    )


def add_runs(store: Store, job: str, statuses: Sequence[str], *, start_hour: float = 0.0) -> None:
    """One run per status, an hour apart, ids ``<job>-<n>``."""
    for n, status in enumerate(statuses):
        add_run(store, f"{job}-{n}", job, status, hour=start_hour + n)


def add_dead_letter(store: Store, dead_letter_id: str, job: str, *, resolved: bool = False) -> None:
    """A dead letter for ``job`` (the scheduler's executor writes these; no store writer exists yet)."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO dead_letters VALUES (?, ?, ?, ?, 4, ?, 'fetch', 'source down', '01_fetch_draws.ipynb', 3, "
            "?, ?, ?, ?)",
            [
                dead_letter_id,
                job,
                T0,
                date(2024, 7, 1),
                f"{job}-last",
                f"shiol rerun {job}-last",
                T0,
                T0 + timedelta(hours=1) if resolved else None,
                "fix-run" if resolved else None,
            ],
        )


def add_missed(store: Store, job: str, slot: datetime, kind: str, draw_date: date | None = None) -> None:
    """A ``missed_slots`` row (the scheduler records these from the planner's Plan.missed)."""
    with store.transaction() as conn:
        conn.execute("INSERT INTO missed_slots VALUES (?, ?, ?, ?, ?)", [job, slot, draw_date, kind, slot])


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    for _ in range(300):  # another process (a running scheduler) may hold the file a moment: wait its turn
        try:
            conn = duckdb.connect(sys.argv[1])
            break
        except duckdb.IOException:
            time.sleep(0.1)
    else:
        conn = duckdb.connect(sys.argv[1])  # still held after 30 s: fail, naming the holder
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[int]:
    """Hold the DuckDB file lock in a child process until the block ends (taking it as soon as the process
    that holds it now lets go); yields its pid."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout.readline().strip() == "locked"
            yield proc.pid
        finally:
            proc.stdin.close()  # EOF: the holder closes its connection and exits
            proc.wait(timeout=10)


# --- job health ----------------------------------------------------------------------------------
