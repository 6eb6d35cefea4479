"""The planning thread: re-plans at the plan's wake-up instant (a retry's due time) within one cycle,
sleeps until then rather than on a fixed cadence (a driven clock shows it), wakes early when woken or when
the store's files change, keeps the last good plan when planning fails, and records missed slots as soon as
it sees them."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shiol_lib.scheduling.plan_loop import PlanLoop, file_signature
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
    loop = PlanLoop(lambda: _plan(None), cycle_s=CYCLE_S, max_wait_s=30.0)
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

    loop = PlanLoop(make_plan, cycle_s=CYCLE_S, max_wait_s=30.0)
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
    settings = Settings(
        home=tmp_path,
        db_path=tmp_path / "db.duckdb",
        snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs",
        evaluation_cron="* * * * *",
        grace_s=60.0,
        pipeline_cron="0 3 1 1 *",
        update_cron="0 3 1 1 *",
    )
    scheduler = Scheduler(settings)
    started = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    insert_run(
        scheduler.store(),
        RunRow(
            run_id="ev-old",
            job="evaluation",
            slot=started,
            trigger="scheduled",
            status="success",
            started_at=started,
            finished_at=started + timedelta(seconds=5),
            error=None,
            error_class=None,
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
    plan = scheduler.replan()  # what the planning thread does each cycle
    assert plan is not None and plan.missed
    recorded = missed_slots(scheduler.store(), job="evaluation")
    assert {m.slot for m in recorded} == {m.slot for m in plan.missed}
    # Recorded once: the next plan knows them. The clock is real, so a minute may turn between the two
    # plans and a newer slot pass its grace; only that newer slot may be reported then.
    again = scheduler.replan()
    assert again is not None
    newest = max(m.slot for m in recorded)
    assert all(m.slot > newest for m in again.missed), again.missed


# -- a driven clock: how long the loop sleeps, and what wakes it -----------------------------------------

START = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


class DrivenTime:
    """A clock that moves only when the loop sleeps; records each sleep asked for."""

    def __init__(self, loop_wake: threading.Event | None = None) -> None:
        self.now = START
        self.sleeps: list[float] = []
        self.wake_event = loop_wake

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> bool:
        if self.wake_event is not None and self.wake_event.is_set():
            return True
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        return False


def _plan_at(at: datetime, wake_at: datetime | None, due: bool = False) -> Plan:
    return Plan(at=at, due=[object()] if due else [], missed=[], next={}, alerts=[], wake_at=wake_at)


def test_with_nothing_due_it_sleeps_until_the_next_slot_in_one_go_not_on_a_fixed_cadence():
    time_ = DrivenTime()
    made: list[datetime] = []

    def make_plan() -> Plan:
        made.append(time_.now)
        return _plan_at(time_.now, START + timedelta(hours=2))  # the next slot, two hours away

    loop = PlanLoop(make_plan, cycle_s=1.0, max_wait_s=3 * 3600, clock=time_.clock, sleep=time_.sleep)
    assert loop.run_cycle()[1] == "clock"
    assert time_.sleeps == [7200.0] and made == [START]
    loop.run_cycle()
    assert made[1] == START + timedelta(hours=2)  # the next plan is made at the slot, not before


def test_the_sleep_is_capped_and_one_cycle_while_something_is_due():
    time_ = DrivenTime()
    plans = iter([_plan_at(START, None), _plan_at(START, START + timedelta(days=3), due=True)])
    loop = PlanLoop(lambda: next(plans), cycle_s=1.0, max_wait_s=60.0, clock=time_.clock, sleep=time_.sleep)
    assert loop.run_cycle()[1] == "clock" and time_.sleeps == [60.0]  # no wake-up: the cap
    assert loop.run_cycle()[1] == "clock" and time_.sleeps == [60.0, 1.0]  # due: one cycle


def test_a_change_to_the_store_files_wakes_it_within_one_cycle(tmp_path: Path):
    db = tmp_path / "store.duckdb"
    db.write_text("v1")
    time_ = DrivenTime()

    def sleep(seconds: float) -> bool:
        time_.sleep(seconds)
        if time_.now >= START + timedelta(seconds=10):
            db.write_text("v2, written by another process")
        return False

    loop = PlanLoop(
        lambda: _plan_at(time_.now, START + timedelta(hours=2)),
        cycle_s=1.0,
        max_wait_s=3600.0,
        changes=lambda: file_signature([db, tmp_path / "store.duckdb.wal"]),
        clock=time_.clock,
        sleep=sleep,
    )
    assert loop.run_cycle()[1] == "store changed"
    assert time_.now == START + timedelta(seconds=10) and set(time_.sleeps) == {1.0}


def test_a_wake_during_planning_ends_the_sleep_at_once():
    loop: PlanLoop | None = None

    def make_plan() -> Plan:
        loop.wake()  # a run finished while the plan was being made
        return _plan_at(time_.now, START + timedelta(hours=2))

    time_ = DrivenTime()
    loop = PlanLoop(make_plan, cycle_s=1.0, max_wait_s=3600.0, clock=time_.clock, sleep=time_.sleep)
    time_.wake_event = loop._wake  # what the real sleep (Event.wait) watches
    assert loop.run_cycle()[1] == "woken" and time_.sleeps == []


def test_the_file_signature_changes_with_a_write_and_tells_a_missing_file(tmp_path: Path):
    path = tmp_path / "f"
    assert file_signature([path]) == (None,)
    path.write_text("a")
    first = file_signature([path])
    path.write_text("ab")
    assert first != file_signature([path]) != (None,)


def test_the_scheduler_replans_when_another_connection_writes_the_store(tmp_path: Path):
    settings = Settings(
        home=tmp_path,
        db_path=tmp_path / "db.duckdb",
        snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs",
        pipeline_cron="0 3 1 1 *",
        update_cron="0 3 1 1 *",
        evaluation_cron="0 3 1 1 *",
        plan_max_age_s=3600.0,
        scheduler_cycle_s=0.1,
    )
    scheduler = Scheduler(settings)
    scheduler.start()
    scheduler.start_planning()
    try:
        first = _until(lambda: scheduler._planner.latest(), "a first plan")
        now = datetime.now(UTC)
        insert_run(
            scheduler.store(),
            RunRow(  # what a `shiol run` in another process writes
                run_id="manual-1",
                job="evaluation",
                slot=None,
                trigger="manual",
                status="success",
                started_at=now,
                finished_at=now,
                error=None,
                error_class=None,
                target_draw_date=None,
                attempt=1,
                parent_run_id=None,
                seed=None,
                pid=None,
                host=None,
                heartbeat_at=now,
                archive_dir=None,
            ),
        )
        # the next plan is five minutes away by the clock (max_wait_s): only the file change brings it now
        _until(lambda: scheduler._planner.latest() is not first or None, "a plan after the write")
    finally:
        scheduler.stop(grace_s=0)


def _until(predicate, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout_s:.0f} s")
