"""Monitoring reads and the alert log, on a real DuckDB store.

The helpers (runs, dead letters, missed slots, a lock held by another process) live in
``tests/store_support.py``, shared with the alert and health tests.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from store_support import T0, add_dead_letter, add_missed, add_run, add_runs

from shiol_lib.scheduling.planner import History, plan_runs
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
from shiol_lib.store.runs import finish_run, list_runs


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
    finish_run(
        store,
        "pipeline-1",
        status="timeout",
        finished_at=T0 + timedelta(hours=1, minutes=30),
        error="whole-run limit 1800 s reached",
        error_class="timeout",
    )
    after = job_health(store)["pipeline"]
    assert after.last_run == after.last_finished
    assert (after.last_run.status, after.last_run.duration_s, after.last_run.error) == (
        "timeout",
        1800.0,
        "whole-run limit 1800 s reached",
    )
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
        ("pipeline", "draw"),
        ("evaluation", "slot"),
        ("pipeline", "draw"),
    ]
    assert len(missed_slots(store, kind="draw", limit=1)) == 1
    assert count_missed(store) == {"slot": 1, "draw": 2}
    with pytest.raises(ValueError, match="kind"):
        missed_slots(store, kind="drawing")


def test_missed_slots_filter_by_job_alone_and_with_kind(store):
    add_missed(store, "pipeline", T0, "draw", date(2024, 7, 1))
    add_missed(store, "pipeline", T0 + timedelta(days=1), "slot")
    add_missed(store, "evaluation", T0 + timedelta(days=2), "slot")
    pipeline = missed_slots(store, job="pipeline")
    assert [(m.job, m.kind) for m in pipeline] == [("pipeline", "slot"), ("pipeline", "draw")]
    assert [m.kind for m in missed_slots(store, job="pipeline", kind="draw")] == ["draw"]
    assert [m.job for m in missed_slots(store, job="evaluation", limit=5)] == ["evaluation"]
    assert missed_slots(store, job="data_update") == []


def test_no_missed_entries_still_counts_both_kinds(store):
    assert count_missed(store) == {"slot": 0, "draw": 0}


# --- the alert log -------------------------------------------------------------------------------


def test_a_recorded_alert_is_found_within_its_window_only(store):
    alert_id = record_alert(store, "failures", "pipeline", "pipeline failed 3 times", ["log", "webhook"], at=T0)
    assert alert_sent_recently(store, "pipeline failed 3 times", 3600, now=T0 + timedelta(minutes=59))
    assert not alert_sent_recently(store, "pipeline failed 3 times", 3600, now=T0 + timedelta(minutes=61))
    assert not alert_sent_recently(store, "another message", 3600, now=T0 + timedelta(minutes=1))
    [alert] = recent_alerts(store)
    assert (alert.alert_id, alert.kind, alert.job, alert.channels) == (
        alert_id,
        "failures",
        "pipeline",
        ("log", "webhook"),
    )
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
