"""Scheduling semantics on a real store: what settles a drawing, when a job enters service, what a reason says.

Calendar used: drawings on Sat 2026-11-28, Mon 2026-11-30, Wed 2026-12-02 at 22:59 EST; the pipeline's
slot is 23:29. The Quick start's manual run processes the bundled snapshot's last drawing, 2024-06-29.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.scheduling.planner import Due, History, Missed, RunRecord, plan_runs
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import Settings
from shiol_lib.store import jobs as job_table
from shiol_lib.store.runs import RunRow, insert_run

ET = NEW_YORK
QUICK_START_DRAWING = date(2024, 6, 29)
SAT, MON, WED = date(2026, 11, 28), date(2026, 11, 30), date(2026, 12, 2)


def et(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=ET)


MON_SLOT, WED_SLOT = et(2026, 11, 30, 23, 29), et(2026, 12, 2, 23, 29)


@pytest.fixture
def scheduler(tmp_path: Path) -> Scheduler:
    settings = Settings(
        home=tmp_path,
        db_path=tmp_path / "db.duckdb",
        snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs",
    )
    return Scheduler(settings)


def manual_run(
    scheduler: Scheduler,
    started: datetime,
    drawing: date = QUICK_START_DRAWING,
    status: str = "success",
    run_id: str = "manual-1",
) -> None:
    """A `shiol run pipeline --offline` as the Quick start makes it: no slot, trigger manual, an old drawing."""
    insert_run(
        scheduler.store(),
        RunRow(
            run_id=run_id,
            job="pipeline",
            slot=None,
            trigger="manual",
            status=status,
            started_at=started,
            finished_at=started + timedelta(minutes=3),
            error=None,
            error_class=None,
            target_draw_date=None,
            attempt=1,
            parent_run_id=None,
            seed=None,
            pid=1,
            host="bench",
            heartbeat_at=started,
            archive_dir=None,
            draw_date=drawing,
        ),
    )


def pipeline(items: list) -> list:
    return [i for i in items if i.job == "pipeline"]


def test_a_manual_run_for_a_2024_drawing_leaves_the_drawing_owed_now_due(scheduler):
    manual_run(scheduler, et(2026, 12, 1, 10, 0))  # Tuesday morning: Monday's drawing is owed
    plan = scheduler.plan(et(2026, 12, 1, 10, 5))
    assert pipeline(plan.due) == [Due("pipeline", MON_SLOT, "missed-draw", MON, 1)]
    assert pipeline(plan.missed) == []


def test_a_manual_run_for_the_owed_drawing_settles_it(scheduler):
    manual_run(scheduler, et(2026, 12, 1, 10, 0), drawing=MON)
    assert pipeline(scheduler.plan(et(2026, 12, 1, 10, 5)).due) == []


def test_a_failed_manual_run_for_the_owed_drawing_does_not_settle_it(scheduler):
    manual_run(scheduler, et(2026, 12, 1, 10, 0), drawing=MON, status="failed")
    assert pipeline(scheduler.plan(et(2026, 12, 1, 10, 5)).due) == [Due("pipeline", MON_SLOT, "missed-draw", MON, 1)]


def test_after_the_scheduler_started_a_manual_run_does_not_move_the_service_start(scheduler):
    scheduler.start(now=et(2026, 11, 30, 9, 0))  # the scheduler entered service Monday morning, Saturday owed
    manual_run(scheduler, et(2026, 12, 1, 10, 0))  # then someone ran the Quick start on Tuesday
    at = et(2026, 12, 3, 9, 0)  # Thursday: Monday's window closed at Wednesday's drawing
    plan = scheduler.plan(at)
    sat_slot = et(2026, 11, 28, 23, 29)
    assert pipeline(plan.missed) == [
        Missed("pipeline", sat_slot, SAT, "draw"),
        Missed("pipeline", MON_SLOT, MON, "draw"),
    ]
    assert pipeline(plan.due) == [Due("pipeline", WED_SLOT, "missed-draw", WED, 1)]
    assert any(i.key == "pipeline:missed-draw:2026-11-30" for i in plan.incidents)
    scheduler._record_plan(scheduler.store(), plan)  # what the planning thread does with each plan
    missed = job_table.planner_history(scheduler.store(), at - timedelta(days=21))[1]
    assert [(job, slot, draw, kind) for job, slot, draw, kind in missed if job == "pipeline"] == [
        ("pipeline", sat_slot, SAT, "draw"),
        ("pipeline", MON_SLOT, MON, "draw"),
    ]
    assert pipeline(scheduler.plan(at + timedelta(minutes=1)).missed) == []  # recorded once


def test_a_failed_manual_run_for_a_2024_drawing_is_never_reported_missed(scheduler):
    scheduler.start(now=et(2026, 11, 30, 9, 0))
    manual_run(scheduler, et(2026, 12, 1, 10, 0), status="failed")
    plan = scheduler.plan(et(2026, 12, 1, 10, 5))
    assert QUICK_START_DRAWING not in {m.draw_date for m in plan.missed}
    assert pipeline(plan.due) == [Due("pipeline", MON_SLOT, "missed-draw", MON, 1)]
    assert [i.key for i in plan.incidents] == ["pipeline:missed-draw:2026-11-28"]  # owed at the start, never run


def test_nothing_before_the_scheduler_first_started_is_missed(scheduler):
    scheduler.start(now=et(2026, 12, 1, 10, 0))  # Tuesday: Monday's drawing is owed, Saturday's is long past
    scheduler.start(now=et(2026, 12, 3, 8, 0))  # a restart does not move the service start
    plan = scheduler.plan(et(2026, 12, 3, 9, 0))
    assert pipeline(plan.missed) == [Missed("pipeline", MON_SLOT, MON, "draw")]
    assert SAT not in {m.draw_date for m in plan.missed}


def test_a_fresh_stores_first_run_at_its_slot_is_on_time(scheduler):
    scheduler.start(now=et(2026, 11, 30, 20, 0))
    assert pipeline(scheduler.plan(MON_SLOT + timedelta(seconds=20)).due) == [
        Due("pipeline", MON_SLOT, "on-time", MON, 1)
    ]


def test_a_fresh_store_never_started_is_on_time_at_the_slot_too(scheduler):
    scheduler.store()
    assert pipeline(scheduler.plan(MON_SLOT + timedelta(seconds=20)).due) == [
        Due("pipeline", MON_SLOT, "on-time", MON, 1)
    ]
    assert pipeline(scheduler.plan(MON_SLOT + timedelta(minutes=5)).due) == [
        Due("pipeline", MON_SLOT, "catch-up", MON, 1)
    ]


def test_a_plain_job_owes_the_slot_fresh_when_the_scheduler_started():
    started = et(2026, 12, 1, 6, 2)  # two minutes after the data update's 06:00 slot
    history = History(scheduler_started=started)
    assert [d for d in plan_runs(history, started).due if d.job == "data_update"] == [
        Due("data_update", et(2026, 12, 1, 6, 0), "catch-up", None, 1)
    ]


def test_a_manual_run_of_a_plain_job_is_not_its_service_start():
    manual = RunRecord(
        run_id="m",
        job="evaluation",
        slot=None,
        trigger="manual",
        status="success",
        started_at=et(2026, 12, 1, 9, 0),
        finished_at=et(2026, 12, 1, 9, 1),
    )
    plan = plan_runs(History(runs=[manual]), et(2026, 12, 2, 12, 15, 10))
    assert [d for d in plan.due if d.job == "evaluation"] == [
        Due("evaluation", et(2026, 12, 2, 12, 15), "on-time", None, 1)
    ]
    assert [m for m in plan.missed if m.job == "evaluation"] == []  # the slots since the manual run are not owed


def test_a_long_downtime_reports_only_what_the_history_holds_and_only_once(scheduler):
    scheduler.start(now=et(2025, 12, 1, 9, 0))  # in service a year ago, then down until Thursday
    at = et(2026, 12, 3, 9, 0)
    plan = scheduler.plan(at)
    missed = pipeline(plan.missed)
    assert {m.job for m in plan.missed} == {"pipeline", "data_update", "evaluation"}
    assert all(m.slot >= at - timedelta(days=21) for m in plan.missed)  # not a year of slots and drawings
    assert missed[-1] == Missed("pipeline", MON_SLOT, MON, "draw")
    scheduler._record_plan(scheduler.store(), plan)
    again = scheduler.plan(at + timedelta(minutes=1))  # what was recorded is read back: nothing reported twice
    assert again.missed == [] and pipeline(again.due) == [Due("pipeline", WED_SLOT, "missed-draw", WED, 1)]
