"""Per-job planner policies on a fake clock: catch-up, grace, retries, timezones, after-drawing delays,
write serialization. Every instant is passed in; nothing sleeps.

Calendar: 2024-07-01 is a Monday; drawings on Sat 06-29, Mon 07-01, Wed 07-03 at 22:59 EDT.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shiol_lib.domain.draw_calendar import NEW_YORK as ET
from shiol_lib.domain.slots import ScheduleError, parse_cron
from shiol_lib.scheduling.planner import (
    Due,
    History,
    JobSchedule,
    Missed,
    PlannerConfig,
    RunRecord,
    SlotRecord,
    default_jobs,
    job_policy,
    plan_runs,
)

MON, SAT = date(2024, 7, 1), date(2024, 6, 29)
HOURLY = parse_cron("0 * * * *")
_ids = count(1)


def et(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=ET)


def run(job: str, slot: datetime, status: str = "success", *, started: datetime | None = None, **kw) -> RunRecord:
    started = started or slot
    finished = None if status == "running" else kw.pop("finished", started + timedelta(minutes=2))
    heartbeat = kw.pop("heartbeat", None)
    return RunRecord(f"p{next(_ids)}", job, slot, "scheduled", status, started, finished, heartbeat_at=heartbeat, **kw)


def hourly(**policy) -> PlannerConfig:
    return PlannerConfig(jobs={"hourly": JobSchedule(HOURLY, **policy)})


def missed_slots(plan, job: str = "hourly") -> list[datetime]:
    return [m.slot for m in plan.missed if m.job == job]


# --- catch-up policies after downtime --------------------------------------------------------------

UP = et(2024, 7, 1, 0, 0)  # the scheduler's first start
DOWN_AFTER = et(2024, 7, 1, 6, 0)  # the last slot run before the downtime
BACK = et(2024, 7, 1, 11, 5)  # the scheduler is back: slots 07:00 .. 11:00 are pending
PENDING = [et(2024, 7, 1, h) for h in range(7, 12)]


def downtime_history(extra: tuple[RunRecord, ...] = (), missed: tuple[SlotRecord, ...] = ()) -> History:
    runs = [run("hourly", et(2024, 7, 1, h)) for h in range(1, 7)]
    return History(runs=[*runs, *extra], missed=missed, scheduler_started=UP)


def test_latest_coalesces_the_slots_within_the_grace_into_one_run() -> None:
    plan = plan_runs(downtime_history(), BACK, hourly(grace_s=3 * 3600))
    assert plan.due == [Due("hourly", et(2024, 7, 1, 11), "catch-up", None, 1)]
    assert missed_slots(plan) == PENDING[:2]  # 07:00 and 08:00 are older than 3 h


def test_none_runs_nothing_late_and_records_every_missed_slot() -> None:
    config = hourly(catch_up="none", grace_s=3 * 3600)
    plan = plan_runs(downtime_history(), BACK, config)
    assert plan.due == []
    assert missed_slots(plan) == PENDING
    recorded = tuple(SlotRecord("hourly", s) for s in PENDING)
    at_noon = plan_runs(downtime_history(missed=recorded), et(2024, 7, 1, 12, 0, 30), config)
    assert at_noon.due == [Due("hourly", et(2024, 7, 1, 12), "on-time", None, 1)]  # on time: run
    assert at_noon.missed == []
    late = plan_runs(downtime_history(missed=recorded), et(2024, 7, 1, 12, 1, 30), config)
    assert late.due == [] and missed_slots(late) == [et(2024, 7, 1, 12)]  # 90 s late: missed, not run


def test_none_misses_an_on_time_slot_held_by_its_own_run_in_flight() -> None:
    config = hourly(catch_up="none")
    long_run = run("hourly", et(2024, 7, 1, 6), "running", heartbeat=et(2024, 7, 1, 7, 0, 50))
    history = History(runs=[run("hourly", et(2024, 7, 1, 5)), long_run], scheduler_started=UP)
    held = plan_runs(history, et(2024, 7, 1, 7, 0, 55), config)
    assert held.due == [] and held.missed == []  # still on time: pending
    later = plan_runs(history, et(2024, 7, 1, 7, 1, 30), config)
    assert later.due == [] and missed_slots(later) == [et(2024, 7, 1, 7)]


def test_none_still_retries_a_failed_on_time_run() -> None:
    config = hourly(catch_up="none", retry_backoff_s=(120.0,))
    failed = run("hourly", et(2024, 7, 1, 7), "failed", finished=et(2024, 7, 1, 7, 1))
    plan = plan_runs(History(runs=[failed], scheduler_started=UP), et(2024, 7, 1, 7, 3), config)
    assert plan.due == [Due("hourly", et(2024, 7, 1, 7), "retry", None, 2)]


def test_each_runs_missed_slots_one_at_a_time_oldest_first_bounded() -> None:
    config = hourly(catch_up="each", max_catch_up=3, grace_s=4 * 3600)
    now, extra, recorded = BACK, [], []
    plan = plan_runs(downtime_history(), now, config)
    assert missed_slots(plan) == PENDING[:2]  # 07:00 past the grace; 08:00 beyond the bound of 3
    recorded = [SlotRecord("hourly", s) for s in missed_slots(plan)]
    ran = []
    for _ in range(5):
        plan = plan_runs(downtime_history(tuple(extra), tuple(recorded)), now, config)
        assert plan.missed == []
        if not plan.due:
            break
        (due,) = plan.due
        assert due.reason == "catch-up" or due.slot == PENDING[-1]
        in_flight = run("hourly", due.slot, "running", started=now, heartbeat=now)
        blocked = plan_runs(downtime_history((*extra, in_flight), tuple(recorded)), now, config)
        assert blocked.due == []  # one at a time
        extra.append(run("hourly", due.slot, started=now))
        ran.append(due.slot)
        now += timedelta(minutes=3)
    assert ran == PENDING[2:]  # 09:00, 10:00, 11:00, oldest first


def test_each_retries_a_failing_slot_before_the_next() -> None:
    config = hourly(catch_up="each", grace_s=4 * 3600, retry_backoff_s=(60.0,))
    failed = run("hourly", PENDING[2], "failed", started=BACK, finished=BACK + timedelta(minutes=1))
    recorded = tuple(SlotRecord("hourly", s) for s in PENDING[:2])
    history = downtime_history((failed,), recorded)
    early = plan_runs(history, BACK + timedelta(minutes=1, seconds=30), config)
    assert early.due == [] and early.missed == []  # the retry waits its backoff; 10:00 waits behind it
    plan = plan_runs(history, BACK + timedelta(minutes=2, seconds=5), config)
    assert plan.due == [Due("hourly", PENDING[2], "retry", None, 2)]
    exhausted = run("hourly", PENDING[2], "failed", started=BACK + timedelta(minutes=3), attempt=2)
    after = plan_runs(downtime_history((failed, exhausted), recorded), BACK + timedelta(minutes=6), config)
    assert after.due == [Due("hourly", PENDING[3], "catch-up", None, 1)]


# --- per-job grace, retries, alerts ---------------------------------------------------------------


def test_grace_and_retries_are_per_job() -> None:
    config = PlannerConfig(
        jobs={
            "short": JobSchedule(HOURLY, grace_s=300, retry_backoff_s=()),
            "long": JobSchedule(HOURLY, grace_s=3600, retry_backoff_s=(30.0, 30.0), failure_alert_after=1),
        }
    )
    assert [job_policy(config, j).max_attempts for j in ("short", "long")] == [1, 3]
    assert job_policy(config, "short").failure_alert_after == config.failure_alert_after
    runs = [run(j, et(2024, 7, 1, 6)) for j in ("short", "long")]
    plan = plan_runs(History(runs=runs, scheduler_started=UP), et(2024, 7, 1, 7, 20), config)
    assert plan.due == [Due("long", et(2024, 7, 1, 7), "catch-up", None, 1)]
    assert plan.missed == [Missed("short", et(2024, 7, 1, 7), None, "slot")]
    failures = [run(j, et(2024, 7, 1, 7), "failed", finished=et(2024, 7, 1, 7, 1)) for j in ("short", "long")]
    plan = plan_runs(History(runs=failures, scheduler_started=UP), et(2024, 7, 1, 7, 2), config)
    assert plan.due == [Due("long", et(2024, 7, 1, 7), "retry", None, 2)]  # "short" has no retry: exhausted
    assert [i.job for i in plan.incidents] == ["long"]  # alert after 1 failure for "long" only


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"catch_up": "sometimes"}, "catch_up"),
        ({"grace_s": -1}, "grace_s"),
        ({"max_catch_up": 0}, "max_catch_up"),
        ({"retry_backoff_s": (0.0,)}, "retry_backoff_s"),
        ({"failure_alert_after": 0}, "failure_alert_after"),
        ({"draw_delay_s": -5}, "draw_delay_s"),
    ],
)
def test_a_bad_job_policy_names_the_job_and_field(policy: dict, field: str) -> None:
    with pytest.raises(ScheduleError, match=rf"job 'hourly': {field}"):
        hourly(**policy)


# --- timezones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "zone", "wall", "expected_et"),
    [
        ("0 9 * * *", "Europe/London", datetime(2024, 3, 29, 9), et(2024, 3, 29, 5)),  # GMT, US already EDT
        ("0 9 * * *", "Europe/London", datetime(2024, 4, 1, 9), et(2024, 4, 1, 4)),  # BST
        ("0 9 * * *", "Europe/London", datetime(2024, 10, 28, 9), et(2024, 10, 28, 5)),  # GMT, US still EDT
        ("30 8 * * *", "Asia/Tokyo", datetime(2024, 11, 2, 8, 30), et(2024, 11, 1, 19, 30)),  # EDT
        ("30 8 * * *", "Asia/Tokyo", datetime(2024, 11, 4, 8, 30), et(2024, 11, 3, 18, 30)),  # EST
    ],
)
def test_a_cron_in_another_timezone_is_planned_at_its_wall_time(
    cron: str, zone: str, wall: datetime, expected_et: datetime
) -> None:
    config = PlannerConfig(jobs={"abroad": JobSchedule(parse_cron(cron, zone))})
    slot = wall.replace(tzinfo=ZoneInfo(zone))
    assert slot == expected_et
    history = History(scheduler_started=slot - timedelta(hours=20))
    before = plan_runs(history, slot - timedelta(minutes=5), config)
    assert before.due == [] and before.next["abroad"] == expected_et
    plan = plan_runs(history, slot + timedelta(seconds=20), config)
    assert plan.due == [Due("abroad", expected_et, "on-time", None, 1)]


@settings(max_examples=40, deadline=None)
@given(
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 12, 31)),
    zone=st.sampled_from(["Europe/London", "Asia/Tokyo", "Australia/Sydney", "America/Los_Angeles"]),
)
def test_each_due_slot_is_the_wall_time_in_its_zone(day: date, zone: str) -> None:
    config = PlannerConfig(jobs={"abroad": JobSchedule(parse_cron("15 7 * * *", zone))})
    slot = datetime(day.year, day.month, day.day, 7, 15, tzinfo=ZoneInfo(zone))
    plan = plan_runs(History(scheduler_started=slot - timedelta(hours=2)), slot + timedelta(seconds=5), config)
    (due,) = plan.due
    local = due.slot.astimezone(ZoneInfo(zone))
    assert (local.date(), local.hour, local.minute) == (day, 7, 15) and due.slot == slot


# --- after-drawing analyst jobs -------------------------------------------------------------------

REPORT = JobSchedule(parse_cron("59 1 * * 0,2,4"), drawing_linked=True, draw_delay_s=3 * 3600)


def test_an_after_drawing_analyst_job_owes_each_drawing_after_its_own_delay() -> None:
    config = PlannerConfig(jobs={**default_jobs(), "report": REPORT})
    history = History(scheduler_started=et(2024, 7, 1, 23, 0))
    at_pipeline = plan_runs(history, et(2024, 7, 1, 23, 29, 20), config)
    assert [(d.job, d.draw_date) for d in at_pipeline.due] == [("pipeline", MON)]  # report's delay: 3 h
    at_report = plan_runs(history, et(2024, 7, 2, 1, 59, 10), config)
    assert Due("report", et(2024, 7, 2, 1, 59), "on-time", MON, 1) in at_report.due
    late = plan_runs(history, et(2024, 7, 2, 9, 0), config)  # down all morning: the drawing is still owed
    assert Due("report", et(2024, 7, 2, 1, 59), "missed-draw", MON, 1) in late.due
    done = History(
        runs=[run("report", et(2024, 7, 2, 1, 59), draw_date=MON)], scheduler_started=history.scheduler_started
    )
    assert [d for d in plan_runs(done, et(2024, 7, 2, 9, 0), config).due if d.job == "report"] == []


def test_an_after_drawing_job_with_catch_up_none_misses_a_stale_drawing() -> None:
    config = PlannerConfig(jobs={"report": REPORT._replace(catch_up="none")})
    history = History(scheduler_started=et(2024, 7, 1, 23, 0))
    plan = plan_runs(history, et(2024, 7, 2, 3, 0), config)  # its only slot (Tue 01:59) passed unseen
    assert plan.due == [] and plan.missed == [Missed("report", et(2024, 7, 2, 1, 59), MON, "draw")]
    assert [i.key for i in plan.incidents] == ["report:missed-draw:2024-07-01"]


# --- write serialization --------------------------------------------------------------------------

WRITER = JobSchedule(parse_cron("29 23 * * *"), writes_store=True)
READER = JobSchedule(parse_cron("29 23 * * *"))
SERIAL = PlannerConfig(jobs={**default_jobs(), "writer": WRITER, "reader": READER})
MON_SLOT = et(2024, 7, 1, 23, 29)
SERIAL_UP = et(2024, 7, 1, 20, 0)


def at_monday_slot(runs: list[RunRecord], at: datetime, config: PlannerConfig = SERIAL) -> list[tuple[str, str]]:
    plan = plan_runs(History(runs=runs, scheduler_started=SERIAL_UP), at, config)
    return [(d.job, d.reason) for d in plan.due if d.job in ("pipeline", "writer", "reader")]


def test_a_write_job_waits_for_the_pipeline_then_catches_up() -> None:
    now = MON_SLOT + timedelta(minutes=5)
    pipeline = run("pipeline", MON_SLOT, "running", heartbeat=now, draw_date=MON)
    assert at_monday_slot([pipeline], now) == [("reader", "catch-up")]  # a reader is never held
    done = run("pipeline", MON_SLOT, draw_date=MON, finished=now + timedelta(minutes=1))
    assert ("writer", "catch-up") in at_monday_slot([done], now + timedelta(minutes=2))


def test_the_pipeline_waits_for_a_write_job_then_runs_its_drawing() -> None:
    now = MON_SLOT + timedelta(minutes=5)
    writer = run("writer", MON_SLOT, "running", heartbeat=now)
    assert at_monday_slot([writer], now) == [("reader", "catch-up")]
    done = run("writer", MON_SLOT, finished=now + timedelta(minutes=1))
    assert ("pipeline", "catch-up") in at_monday_slot([done], now + timedelta(minutes=2))


def test_a_stale_writer_holds_nobody_and_an_unplanned_writer_holds_every_writer() -> None:
    now = MON_SLOT + timedelta(minutes=5)
    crashed = run("writer", MON_SLOT, "running", heartbeat=MON_SLOT - timedelta(minutes=4), started=MON_SLOT)
    assert ("pipeline", "catch-up") in at_monday_slot([crashed], now)
    manual = run("paused-writer", MON_SLOT, "running", heartbeat=now)  # paused: absent from the jobs
    config = PlannerConfig(jobs=SERIAL.jobs, store_writers=frozenset({"paused-writer"}))
    assert at_monday_slot([manual], now, config) == [("reader", "catch-up")]
    assert ("pipeline", "catch-up") in at_monday_slot([manual], now)  # not declared a writer: not held


@settings(max_examples=60, deadline=None)
@given(
    running=st.sets(st.sampled_from(["pipeline", "data_update", "evaluation", "writer", "reader"]), max_size=2),
    minutes=st.integers(min_value=0, max_value=9 * 60),
)
def test_no_writer_is_due_while_another_writer_runs(running: set[str], minutes: int) -> None:
    now = MON_SLOT - timedelta(hours=4) + timedelta(minutes=minutes)
    runs = [
        run(j, now - timedelta(minutes=1), "running", heartbeat=now, started=now - timedelta(minutes=1))
        for j in running
    ]
    plan = plan_runs(History(runs=runs, scheduler_started=SERIAL_UP - timedelta(days=1)), now, SERIAL)
    writers_running = {j for j in running if job_policy(SERIAL, j).writes_store}
    for due in plan.due:
        if job_policy(SERIAL, due.job).writes_store:
            assert not writers_running - {due.job}, (due, running)
        assert due.job not in running


def test_paused_jobs_are_simply_absent_from_the_config() -> None:
    config = PlannerConfig(jobs={"reader": READER})
    runs = [run("writer", MON_SLOT - timedelta(days=1), "failed")]
    plan = plan_runs(History(runs=runs, scheduler_started=SERIAL_UP), MON_SLOT + timedelta(seconds=10), config)
    assert [d.job for d in plan.due] == ["reader"] and plan.missed == [] and plan.incidents == []
    assert set(plan.next) == {"reader"}
