"""The planning thread: re-plans at the plan's wake-up instant (a retry's due time) within one cycle,
keeps the last good plan when planning fails, and records missed slots as soon as it sees them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shiol_lib.scheduling.plan_loop import PlanLoop
from shiol_lib.scheduling.plans import Plan
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import Settings
from shiol_lib.store.monitoring import missed_slots
from shiol_lib.store.runs import RunRow, insert_run

CYCLE_S = 0.2


def _plan(wake_in_s: float | None, due: bool = False) -> Plan:
    now = datetime.now(UTC)
    wake = now + timedelta(seconds=wake_in_s) if wake_in_s is not None else None
    return Plan(at=now, due=[object()] if due else [], missed=[], next={}, alerts=[], wake_at=wake)


def test_the_wait_is_one_cycle_while_due_until_the_wake_up_otherwise_and_capped():
    loop = PlanLoop(lambda: _plan(None), cycle_s=CYCLE_S, refresh_s=30.0)
    assert loop.wait_s(None) == CYCLE_S and loop.wait_s(_plan(100, due=True)) == CYCLE_S
    assert 1.9 < loop.wait_s(_plan(2.0)) <= 2.0
    assert loop.wait_s(_plan(3600)) == 30.0 and loop.wait_s(_plan(None)) == 30.0
    assert loop.wait_s(_plan(-5)) > 0  # a wake-up in the past never spins


def test_a_retry_due_in_half_a_second_is_planned_within_one_cycle_of_it():
    made: list[float] = []
    retry_at = time.monotonic() + 0.5
    first = threading.Event()

    def make_plan() -> Plan:
        made.append(time.monotonic())
        first.set()
        return _plan(max(0.0, retry_at - time.monotonic()) if len(made) == 1 else None)

    loop = PlanLoop(make_plan, cycle_s=CYCLE_S, refresh_s=30.0)
    loop.start()
    try:
        first.wait(5)
        deadline = time.monotonic() + 5
        while len(made) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop()
    assert len(made) >= 2 and retry_at <= made[1] + 0.02 and made[1] - retry_at < CYCLE_S


def test_a_failing_plan_keeps_the_last_good_one_which_ages(caplog):
    plans = iter([_plan(None)])

    def make_plan() -> Plan:
        return next(plans)  # StopIteration the second time: an error in planning

    loop = PlanLoop(make_plan, cycle_s=CYCLE_S)
    good = loop.run_once()
    assert good is not None and loop.run_once() is None
    assert loop.latest().plan is good and loop.age_s() >= 0
    assert "planning failed" in caplog.text


def test_missed_slots_are_recorded_when_the_planner_sees_them_not_at_the_next_run(tmp_path: Path):
    settings = Settings(home=tmp_path, db_path=tmp_path / "db.duckdb", snapshot_path=tmp_path / "db.snapshot.duckdb",
                        runs_dir=tmp_path / "runs", evaluation_cron="* * * * *", grace_s=60.0,
                        pipeline_cron="0 3 1 1 *", update_cron="0 3 1 1 *")
    scheduler = Scheduler(settings)
    started = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    insert_run(scheduler.store(), RunRow(
        run_id="ev-old", job="evaluation", slot=started, trigger="scheduled", status="success", started_at=started,
        finished_at=started + timedelta(seconds=5), error=None, error_class=None, target_draw_date=None,
        attempt=1, parent_run_id=None, seed=None, pid=None, host=None, heartbeat_at=started, archive_dir=None,
    ))
    plan = scheduler.replan()  # what the planning thread does each cycle
    assert plan is not None and plan.missed
    recorded = missed_slots(scheduler.store(), job="evaluation")
    assert {m.slot for m in recorded} == {m.slot for m in plan.missed}
    assert scheduler.replan().missed == []  # recorded once: the next plan knows
