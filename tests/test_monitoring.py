"""Monitoring reads and the alert log, on a real DuckDB store.

The helpers at the top (runs, dead letters, missed slots, a lock held by another process) are shared
with test_alerts.py and test_health.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shiol_lib.scheduling.planner import History, plan_runs
from shiol_lib.store import Store
from shiol_lib.store.monitoring import (
    alert_sent_recently,
    count_missed,
    job_health,
    missed_slots,
    open_dead_letters,
    read_monitoring,
    recent_alerts,
    record_alert,
)
from shiol_lib.store.runs import RunRow, finish_run, insert_run, list_runs

UTC = timezone.utc
T0 = datetime(2024, 7, 1, 16, 0, tzinfo=UTC)


# --- shared helpers ------------------------------------------------------------------------------


def add_run(store: Store, run_id: str, job: str, status: str, *, hour: float, minutes: float = 3.0,
            error: str | None = None) -> None:
    """A run of ``job`` started ``hour`` hours after T0 and, unless running, finished ``minutes`` later.

    One insert_run per run (a store write costs a snapshot republish); finish_run is exercised in
    test_a_run_finishing_moves_from_last_run_to_last_finished.
    """
    started = T0 + timedelta(hours=hour)
    failed = status not in ("running", "success", "skipped")
    insert_run(store, RunRow(
        run_id=run_id, job=job, slot=started, trigger="scheduled", status=status, started_at=started,
        finished_at=None if status == "running" else started + timedelta(minutes=minutes),
        error=error or (f"{status} in step fetch" if failed else None), error_class="fetch" if failed else None,
        target_draw_date=None, attempt=1, parent_run_id=None, seed=None, pid=None, host=None,
        heartbeat_at=started, archive_dir=None,
    ))


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
            [dead_letter_id, job, T0, date(2024, 7, 1), f"{job}-last", f"shiol rerun {job}-last", T0,
             T0 + timedelta(hours=1) if resolved else None, "fix-run" if resolved else None],
        )


def add_missed(store: Store, job: str, slot: datetime, kind: str, draw_date: date | None = None) -> None:
    """A ``missed_slots`` row (the scheduler records these from the planner's Plan.missed)."""
    with store.transaction() as conn:
        conn.execute("INSERT INTO missed_slots VALUES (?, ?, ?, ?, ?)", [job, slot, draw_date, kind, slot])


HOLDER = textwrap.dedent(
    """
    import sys, duckdb
    conn = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[int]:
    """Hold the DuckDB file lock in a child process until the block ends; yields its pid."""
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "locked"
            yield proc.pid
        finally:
            proc.stdin.close()  # EOF: the holder closes its connection and exits
            proc.wait(timeout=10)


# --- job health ----------------------------------------------------------------------------------


def test_a_job_that_never_ran_is_reported_with_zeros(store):
    health = job_health(store, ["pipeline"])
    assert list(health) == ["pipeline"]
    p = health["pipeline"]
    assert (p.last_run, p.last_finished, p.last_success_at) == (None, None, None)
    assert (p.consecutive_failures, p.counts) == (0, {})


def test_the_failure_streak_counts_back_from_the_newest_finished_run(store):
    add_runs(store, "pipeline", ["success", "failed", "timeout", "crashed"])
    p = job_health(store, ["pipeline"])["pipeline"]
    assert p.consecutive_failures == 3
    assert p.counts == {"crashed": 1, "failed": 1, "success": 1, "timeout": 1}
    assert p.last_success_at == T0 + timedelta(minutes=3)
    assert p.last_run.run_id == "pipeline-3" and p.last_run.status == "crashed"
    assert p.last_run.started_at == T0 + timedelta(hours=3)
    assert p.last_run.duration_s == 180.0 and p.last_finished == p.last_run
    assert p.last_run.error == "crashed in step fetch"


def test_other_finished_statuses_end_the_streak_and_unfinished_runs_are_skipped(store):
    add_runs(store, "pipeline", ["failed", "failed", "success", "failed", "running"])
    add_runs(store, "data_update", ["failed", "failed", "refused"])
    add_runs(store, "evaluation", ["failed", "waiting"])
    health = job_health(store)  # every job found in the store
    assert sorted(health) == ["data_update", "evaluation", "pipeline"]
    p = health["pipeline"]
    assert p.consecutive_failures == 1
    assert p.last_run.status == "running" and p.last_run.duration_s is None and p.last_run.finished_at is None
    assert p.last_finished.run_id == "pipeline-3" and p.last_finished.status == "failed"
    assert p.last_finished.duration_s == 180.0
    assert p.counts == {"failed": 3, "running": 1, "success": 1}
    assert health["data_update"].consecutive_failures == 2  # a refused start never ran
    assert health["evaluation"].consecutive_failures == 0  # waiting for results is not a failure


def test_a_run_finishing_moves_from_last_run_to_last_finished(store):
    add_runs(store, "pipeline", ["failed", "running"])
    before = job_health(store)["pipeline"]
    assert before.last_run.run_id == "pipeline-1" and before.last_finished.run_id == "pipeline-0"
    assert before.consecutive_failures == 1
    finish_run(store, "pipeline-1", status="timeout", finished_at=T0 + timedelta(hours=1, minutes=30),
               error="whole-run limit 1800 s reached", error_class="timeout")
    after = job_health(store)["pipeline"]
    assert after.last_run == after.last_finished
    assert (after.last_run.status, after.last_run.duration_s, after.last_run.error) == (
        "timeout", 1800.0, "whole-run limit 1800 s reached")
    assert after.consecutive_failures == 2 and after.counts == {"failed": 1, "timeout": 1}


def test_the_streak_agrees_with_the_planner_failure_alert(store):
    add_runs(store, "evaluation", ["success", "failed", "failed"])
    at = T0 + timedelta(hours=4)
    assert job_health(store)["evaluation"].consecutive_failures == 2
    assert not [a for a in plan_runs(History(runs=list_runs(store)), at).alerts if a.startswith("evaluation")]
    add_run(store, "evaluation-3", "evaluation", "timeout", hour=3)
    assert job_health(store)["evaluation"].consecutive_failures == 3
    alerts = plan_runs(History(runs=list_runs(store)), at).alerts
    assert [a for a in alerts if a.startswith("evaluation: the last 3 runs failed")]


# --- dead letters and missed slots ---------------------------------------------------------------


def test_open_dead_letters_leave_out_resolved_ones(store):
    add_dead_letter(store, "dl-1", "pipeline")
    add_dead_letter(store, "dl-2", "evaluation", resolved=True)
    letters = open_dead_letters(store)
    assert [d.dead_letter_id for d in letters] == ["dl-1"]
    assert letters[0].job == "pipeline" and letters[0].rerun_command == "shiol rerun pipeline-last"
    assert letters[0].error_class == "fetch" and letters[0].failed_cell == 3


def test_missed_slots_filter_by_kind_and_count(store):
    add_missed(store, "pipeline", T0, "draw", date(2024, 7, 1))
    add_missed(store, "pipeline", T0 + timedelta(days=2), "draw", date(2024, 7, 3))
    add_missed(store, "evaluation", T0, "slot")
    draws = missed_slots(store, kind="draw")
    assert [m.draw_date for m in draws] == [date(2024, 7, 3), date(2024, 7, 1)]  # newest first
    assert [(m.job, m.kind) for m in missed_slots(store)] == [
        ("pipeline", "draw"), ("evaluation", "slot"), ("pipeline", "draw")]
    assert len(missed_slots(store, kind="draw", limit=1)) == 1
    assert count_missed(store) == {"slot": 1, "draw": 2}
    with pytest.raises(ValueError, match="kind"):
        missed_slots(store, kind="drawing")


def test_no_missed_entries_still_counts_both_kinds(store):
    assert count_missed(store) == {"slot": 0, "draw": 0}


# --- the alert log -------------------------------------------------------------------------------


def test_a_recorded_alert_is_found_within_its_window_only(store):
    alert_id = record_alert(store, "failures", "pipeline", "pipeline failed 3 times", ["log", "webhook"], at=T0)
    assert alert_sent_recently(store, "pipeline failed 3 times", 3600, now=T0 + timedelta(minutes=59))
    assert not alert_sent_recently(store, "pipeline failed 3 times", 3600, now=T0 + timedelta(minutes=61))
    assert not alert_sent_recently(store, "another message", 3600, now=T0 + timedelta(minutes=1))
    [alert] = recent_alerts(store)
    assert (alert.alert_id, alert.kind, alert.job, alert.channels) == (alert_id, "failures", "pipeline",
                                                                       ("log", "webhook"))
    assert alert.created_at == T0


def test_an_alert_needs_a_channel(store):
    with pytest.raises(ValueError, match="channel"):
        record_alert(store, "failures", "pipeline", "message", [])


def test_read_monitoring_gathers_everything_through_one_connection(store):
    add_runs(store, "pipeline", ["failed"])
    add_dead_letter(store, "dl-1", "pipeline")
    add_missed(store, "pipeline", T0, "draw", date(2024, 7, 1))
    record_alert(store, "missed-draw", "pipeline", "drawing 2024-07-01 missed", ["log"], at=T0)
    mon = read_monitoring(store, ["pipeline", "evaluation"], recent=5)
    assert sorted(mon.jobs) == ["evaluation", "pipeline"]
    assert mon.jobs["pipeline"].consecutive_failures == 1
    assert [d.dead_letter_id for d in mon.dead_letters] == ["dl-1"]
    assert mon.missed_counts == {"slot": 0, "draw": 1}
    assert [m.draw_date for m in mon.recent_missed_draws] == [date(2024, 7, 1)]
    assert [a.message for a in mon.recent_alerts] == ["drawing 2024-07-01 missed"]
