"""The scheduling planner on a fake clock: every instant is passed in, nothing sleeps.

Calendar used: 2024-07-01 is a Monday; drawings on Sat 06-29, Mon 07-01, Wed 07-03, Sat 07-06 at 22:59 EDT.
"""

import json
from datetime import UTC, date, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shiol_lib.domain.draw_calendar import NEW_YORK, draw_after, draw_instant, previous_draw
from shiol_lib.domain.slots import ScheduleError, parse_cron, slots_between
from shiol_lib.errors import ShiolError
from shiol_lib.scheduling.planner import (
    Due,
    History,
    JobSchedule,
    Missed,
    Plan,
    PlannerConfig,
    RunRecord,
    SlotRecord,
    plan_runs,
)

UTC = UTC
ET = NEW_YORK
CONFIG = PlannerConfig()
START = datetime(2024, 6, 22, tzinfo=ET)
MON, WED, SAT_BEFORE, SAT = date(2024, 7, 1), date(2024, 7, 3), date(2024, 6, 29), date(2024, 7, 6)
_ids = count(1)


def et(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, fold: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=ET, fold=fold)


def run(
    job: str,
    slot: datetime | None,
    status: str = "success",
    *,
    started: datetime | None = None,
    finished: datetime | None = None,
    attempt: int = 1,
    draw_date: date | None = None,
    trigger: str = "scheduled",
    heartbeat: datetime | None = None,
) -> RunRecord:
    started = started or slot
    assert started is not None
    if finished is None and status not in ("running", "crashed"):
        finished = started + timedelta(minutes=2)
    if draw_date is None and job == "pipeline" and slot is not None:
        draw_date = previous_draw(slot)
    return RunRecord(
        run_id=f"r{next(_ids)}",
        job=job,
        slot=slot,
        trigger=trigger,
        status=status,
        started_at=started,
        finished_at=finished,
        attempt=attempt,
        draw_date=draw_date,
        pid=4242,
        host="bench",
        heartbeat_at=heartbeat,
    )


def steady(until: datetime, since: datetime = START, config: PlannerConfig = CONFIG) -> list[RunRecord]:
    """One successful run for every slot of every job in (since, until]."""
    runs = [
        run(job, slot) for job, schedule in config.jobs.items() for slot in slots_between(schedule.spec, since, until)
    ]
    return sorted(runs, key=lambda r: r.started_at)


MONDAY_MIDNIGHT = et(2024, 7, 1)


def plan(runs=(), at: datetime = MONDAY_MIDNIGHT, *, missed=(), dead=(), config: PlannerConfig = CONFIG) -> Plan:
    return plan_runs(History(runs=list(runs), missed=list(missed), dead_letters=list(dead)), at, config)


def of(items, job: str) -> list:
    return [i for i in items if i.job == job]


# --- on time, and the JSON shape -----------------------------------------------------------------


def test_pipeline_on_time_at_23_29_monday():
    p = plan(steady(et(2024, 7, 1, 23, 0)), et(2024, 7, 1, 23, 29))
    assert p.due == [Due("pipeline", et(2024, 7, 1, 23, 29), "on-time", MON, 1)]
    assert p.missed == [] and p.alerts == []


def test_as_dict_shape_and_offsets():
    p = plan(steady(et(2024, 7, 1, 23, 0)), et(2024, 7, 1, 23, 29))
    data = p.as_dict()
    assert data == {
        "at": "2024-07-01T23:29:00-04:00",
        "at_utc": "2024-07-02T03:29:00+00:00",
        "due": [
            {
                "job": "pipeline",
                "slot": "2024-07-01T23:29:00-04:00",
                "slot_utc": "2024-07-02T03:29:00+00:00",
                "reason": "on-time",
                "draw_date": "2024-07-01",
                "attempt": 1,
            }
        ],
        "missed": [],
        "next": {
            "pipeline": "2024-07-03T23:29:00-04:00",
            "data_update": "2024-07-02T06:00:00-04:00",
            "evaluation": "2024-07-02T06:15:00-04:00",
        },
        "next_utc": {
            "pipeline": "2024-07-04T03:29:00+00:00",
            "data_update": "2024-07-02T10:00:00+00:00",
            "evaluation": "2024-07-02T10:15:00+00:00",
        },
        "alerts": [],
        "wake_at": "2024-07-02T06:00:00-04:00",  # the data update's next slot comes first
        "wake_at_utc": "2024-07-02T10:00:00+00:00",
        "draws": None,  # the planner alone does not read the store's drawings (Scheduler.plan adds them)
        "dead_runs": [],  # nor the process table (Scheduler.plan names the runs whose process is gone)
        "definitions": [],  # the jobs file's problems (Scheduler.plan fills them while the file does not validate)
    }
    assert json.loads(json.dumps(data)) == data


def test_as_dict_in_winter_uses_est_and_renders_utc_input_in_new_york():
    runs = steady(et(2024, 1, 13, 23, 0), since=et(2024, 1, 6))
    p = plan(runs, datetime(2024, 1, 14, 3, 35, tzinfo=UTC))  # Saturday 22:35 EST
    data = p.as_dict()
    assert data["at"] == "2024-01-13T22:35:00-05:00"
    assert data["next"]["pipeline"] == "2024-01-13T23:29:00-05:00"
    assert data["due"] == [] and data["missed"] == []
    runs = steady(et(2024, 1, 15, 22, 0), since=et(2024, 1, 6))  # down from Monday 22:00
    missed = plan(runs, et(2024, 1, 17, 23, 0)).as_dict()["missed"]  # Wednesday's drawing has happened
    assert [m for m in missed if m["job"] == "pipeline"] == [
        {
            "job": "pipeline",
            "slot": "2024-01-15T23:29:00-05:00",
            "slot_utc": "2024-01-16T04:29:00+00:00",
            "draw_date": "2024-01-15",
            "kind": "draw",
        }
    ]


def test_next_slot_per_job_is_strictly_after():
    p = plan(steady(et(2024, 7, 1, 23, 29)), et(2024, 7, 1, 23, 29))
    assert p.next == {
        "pipeline": et(2024, 7, 3, 23, 29),
        "data_update": et(2024, 7, 2, 6, 0),
        "evaluation": et(2024, 7, 2, 6, 15),
    }
    assert p.due == []  # the slot already has its success


# --- downtime ------------------------------------------------------------------------------------


def test_two_hour_downtime_slot_within_grace_is_caught_up():
    runs = steady(et(2024, 7, 2, 11, 0))  # down from 11:00 to 12:20 on Tuesday
    assert plan(runs, et(2024, 7, 2, 12, 15, 30)).due == [Due("evaluation", et(2024, 7, 2, 12, 15), "on-time", None, 1)]
    p = plan(runs, et(2024, 7, 2, 12, 20))
    assert p.due == [Due("evaluation", et(2024, 7, 2, 12, 15), "catch-up", None, 1)]
    assert p.missed == []


def test_two_hour_downtime_slot_beyond_grace_is_missed():
    p = plan(steady(et(2024, 7, 2, 11, 0)), et(2024, 7, 2, 13, 0))
    assert p.due == []
    assert p.missed == [Missed("evaluation", et(2024, 7, 2, 12, 15), None, "slot")]
    assert p.alerts == []  # a missed plain slot is recorded, not alerted


def test_two_hour_downtime_pipeline_drawing_is_still_caught_up():
    runs = steady(et(2024, 7, 1, 22, 0))  # down from 22:00 Monday
    assert plan(runs, et(2024, 7, 1, 23, 35)).due == [Due("pipeline", et(2024, 7, 1, 23, 29), "catch-up", MON, 1)]
    p = plan(runs, et(2024, 7, 2, 0, 5))  # back at 00:05 Tuesday: slot 36 minutes old
    assert p.due == [Due("pipeline", et(2024, 7, 1, 23, 29), "missed-draw", MON, 1)]
    assert p.missed == []


def test_three_day_downtime_coalesces_and_misses():
    runs = steady(et(2024, 7, 1, 7, 0))  # down from Monday 07:00 to Thursday 12:20
    p = plan(runs, et(2024, 7, 4, 12, 20))
    assert p.due == [
        Due("pipeline", et(2024, 7, 3, 23, 29), "missed-draw", WED, 1),
        Due("evaluation", et(2024, 7, 4, 12, 15), "catch-up", None, 1),
    ]
    assert of(p.missed, "pipeline") == [Missed("pipeline", et(2024, 7, 1, 23, 29), MON, "draw")]
    assert [m.slot for m in of(p.missed, "data_update")] == [et(2024, 7, 2, 6, 0), et(2024, 7, 4, 6, 0)]
    evaluation = of(p.missed, "evaluation")
    assert len(evaluation) == 9 and {m.kind for m in evaluation} == {"slot"}
    assert evaluation[0].slot == et(2024, 7, 1, 12, 15) and evaluation[-1].slot == et(2024, 7, 4, 6, 15)
    assert p.alerts == [
        "pipeline: drawing 2024-07-01 missed: no successful run before the next drawing "
        "(2024-07-03T22:59:00-04:00 ET (2024-07-04T02:59:00+00:00 UTC))"
    ]
    assert [(i.key, i.kind) for i in p.incidents] == [("pipeline:missed-draw:2024-07-01", "missed-draw")]


def test_three_day_downtime_with_a_wide_grace_runs_one_coalesced_run_per_job():
    config = PlannerConfig(grace_s=4 * 86400)
    p = plan(steady(et(2024, 7, 1, 7, 0)), et(2024, 7, 4, 12, 20), config=config)
    assert p.due == [
        Due("pipeline", et(2024, 7, 3, 23, 29), "catch-up", WED, 1),
        Due("data_update", et(2024, 7, 4, 6, 0), "catch-up", None, 1),
        Due("evaluation", et(2024, 7, 4, 12, 15), "catch-up", None, 1),
    ]
    assert p.missed == [Missed("pipeline", et(2024, 7, 1, 23, 29), MON, "draw")]  # a closed window ignores grace


def test_executing_the_plan_settles_everything():
    at = et(2024, 7, 4, 12, 20)
    runs = steady(et(2024, 7, 1, 7, 0))
    p = plan(runs, at)
    runs += [run(d.job, d.slot, started=at, attempt=d.attempt, draw_date=d.draw_date) for d in p.due]
    missed = [SlotRecord(m.job, m.slot, m.draw_date) for m in p.missed]
    again = plan(runs, at + timedelta(minutes=5), missed=missed)
    assert again.due == [] and again.missed == []
    # the coalesced and missed slots stay settled later too
    later = plan(runs, et(2024, 7, 4, 18, 15), missed=missed)
    assert later.due == [Due("evaluation", et(2024, 7, 4, 18, 15), "on-time", None, 1)] and later.missed == []


# --- fresh history -------------------------------------------------------------------------------


def test_fresh_history_owes_only_the_latest_drawing():
    p = plan([], et(2024, 7, 4, 12, 40))
    assert p.due == [Due("pipeline", et(2024, 7, 3, 23, 29), "missed-draw", WED, 1)]
    assert p.missed == [] and p.alerts == []


def test_fresh_history_runs_a_plain_slot_only_while_it_is_fresh():
    assert of(plan([], et(2024, 7, 4, 12, 15, 30)).due, "evaluation") == [
        Due("evaluation", et(2024, 7, 4, 12, 15), "on-time", None, 1)
    ]
    assert of(plan([], et(2024, 7, 4, 12, 26)).due, "evaluation") == []


def test_fresh_history_between_a_drawing_and_its_delay_owes_nothing():
    # Saturday 23:10: Wednesday's window closed at 22:59, Saturday's drawing is not passed until 23:29.
    p = plan([], et(2024, 7, 6, 23, 10))
    assert p.due == [] and p.missed == []
    assert plan([], et(2024, 7, 6, 23, 29)).due == [Due("pipeline", et(2024, 7, 6, 23, 29), "on-time", SAT, 1)]


def test_only_drawings_after_the_first_run_are_reported_missed():
    first = [run("pipeline", et(2024, 7, 3, 23, 29))]  # the job first ran for Wednesday's drawing
    p = plan(first, et(2024, 7, 4, 12, 0))
    assert of(p.due, "pipeline") == [] and of(p.missed, "pipeline") == []
    p = plan(first, et(2024, 7, 8, 23, 45))  # Saturday's drawing was never run; Monday's is owed
    assert of(p.missed, "pipeline") == [Missed("pipeline", et(2024, 7, 6, 23, 29), SAT, "draw")]
    assert of(p.due, "pipeline") == [Due("pipeline", et(2024, 7, 8, 23, 29), "missed-draw", date(2024, 7, 8), 1)]


# --- the drawing window --------------------------------------------------------------------------


def test_a_drawing_is_missed_once_the_next_drawing_has_happened():
    runs = steady(et(2024, 7, 1, 7, 0))
    before = plan(runs, et(2024, 7, 3, 22, 58))
    assert of(before.due, "pipeline") == [Due("pipeline", et(2024, 7, 1, 23, 29), "missed-draw", MON, 1)]
    after = plan(runs, et(2024, 7, 3, 23, 0))  # Wednesday's drawing happened at 22:59, not passed yet
    assert of(after.due, "pipeline") == []
    assert of(after.missed, "pipeline") == [Missed("pipeline", et(2024, 7, 1, 23, 29), MON, "draw")]
    assert any("drawing 2024-07-01 missed" in a for a in after.alerts)
    on_time = plan(runs, et(2024, 7, 3, 23, 29))
    assert of(on_time.due, "pipeline") == [Due("pipeline", et(2024, 7, 3, 23, 29), "on-time", WED, 1)]


def test_a_pending_retry_of_a_closed_drawing_becomes_a_missed_draw():
    runs = steady(et(2024, 7, 1, 23, 0)) + [
        run("pipeline", et(2024, 7, 1, 23, 29), "failed", finished=et(2024, 7, 1, 23, 35))
    ]
    assert plan(runs, et(2024, 7, 3, 22, 58)).due == [Due("pipeline", et(2024, 7, 1, 23, 29), "retry", MON, 2)]
    p = plan(runs, et(2024, 7, 3, 23, 0))
    assert p.due == []
    assert of(p.missed, "pipeline") == [Missed("pipeline", et(2024, 7, 1, 23, 29), MON, "draw")]


def test_a_success_for_the_drawing_from_any_trigger_settles_it():
    runs = steady(et(2024, 7, 1, 23, 0)) + [
        run("pipeline", None, trigger="manual", started=et(2024, 7, 1, 23, 29, 40), draw_date=MON)
    ]
    p = plan(runs, et(2024, 7, 2, 0, 0))
    assert p.due == [] and p.missed == []


def test_several_slots_for_one_drawing_are_settled_by_its_success():
    config = PlannerConfig(jobs={"pipeline": JobSchedule(parse_cron("29 1,23 * * *"), drawing_linked=True)})
    runs = [run("pipeline", et(2024, 6, 29, 23, 29)), run("pipeline", et(2024, 7, 1, 23, 29))]
    assert plan(runs, et(2024, 7, 2, 1, 29), config=config).due == []  # Tue 01:29 belongs to Monday's drawing
    failed = [runs[0], run("pipeline", et(2024, 7, 1, 23, 29), "failed", attempt=4)]
    assert plan(failed, et(2024, 7, 2, 1, 29), config=config).due == []  # exhausted: the dead letter decides
    missing = [runs[0]]
    assert plan(missing, et(2024, 7, 2, 1, 29), config=config).due == [
        Due("pipeline", et(2024, 7, 2, 1, 29), "on-time", MON, 1)
    ]


# --- retries, recovery, in flight ----------------------------------------------------------------


def test_failed_attempt_one_retries_after_60_s_not_before():
    runs = steady(et(2024, 7, 2, 12, 0)) + [
        run("evaluation", et(2024, 7, 2, 12, 15), "failed", finished=et(2024, 7, 2, 12, 16))
    ]
    assert plan(runs, et(2024, 7, 2, 12, 16, 59)).due == []
    assert plan(runs, et(2024, 7, 2, 12, 17)).due == [Due("evaluation", et(2024, 7, 2, 12, 15), "retry", None, 2)]


def test_the_plan_wakes_at_a_retrys_due_time():
    runs = steady(et(2024, 7, 2, 12, 0)) + [
        run("evaluation", et(2024, 7, 2, 12, 15), "failed", finished=et(2024, 7, 2, 12, 16))
    ]
    assert plan(runs, et(2024, 7, 2, 12, 16, 30)).wake_at == et(2024, 7, 2, 12, 17)


def test_backoff_doubles_and_the_fourth_failure_is_final():
    slot = et(2024, 7, 2, 12, 15)
    runs = steady(et(2024, 7, 2, 12, 0)) + [
        run("evaluation", slot, "failed", finished=et(2024, 7, 2, 12, 16), attempt=1),
        run("evaluation", slot, "timeout", started=et(2024, 7, 2, 12, 17), finished=et(2024, 7, 2, 12, 18), attempt=2),
    ]
    assert plan(runs, et(2024, 7, 2, 12, 19, 59)).due == []
    assert plan(runs, et(2024, 7, 2, 12, 20)).due == [Due("evaluation", slot, "retry", None, 3)]
    runs.append(
        run("evaluation", slot, "failed", started=et(2024, 7, 2, 12, 20), finished=et(2024, 7, 2, 12, 21), attempt=3)
    )
    assert plan(runs, et(2024, 7, 2, 12, 24, 59)).due == []
    assert plan(runs, et(2024, 7, 2, 12, 25)).due == [Due("evaluation", slot, "retry", None, 4)]
    runs.append(
        run("evaluation", slot, "failed", started=et(2024, 7, 2, 12, 25), finished=et(2024, 7, 2, 12, 26), attempt=4)
    )
    p = plan(runs, et(2024, 7, 2, 13, 0))
    assert p.due == [] and p.missed == []
    assert plan(runs, et(2024, 7, 2, 18, 15)).due == [Due("evaluation", et(2024, 7, 2, 18, 15), "on-time", None, 1)]


def test_attempt_four_failed_alone_means_nothing_due():
    runs = steady(et(2024, 7, 2, 12, 0)) + [
        run("evaluation", et(2024, 7, 2, 12, 15), "failed", attempt=4, finished=et(2024, 7, 2, 12, 16))
    ]
    assert plan(runs, et(2024, 7, 2, 12, 30)).due == []


def test_custom_backoff_changes_max_attempts():
    config = PlannerConfig(retry_backoff_s=(10,))
    assert config.max_attempts == 2 and CONFIG.max_attempts == 4
    slot = et(2024, 7, 2, 12, 15)
    first = steady(et(2024, 7, 2, 12, 0)) + [run("evaluation", slot, "failed", finished=et(2024, 7, 2, 12, 16))]
    assert plan(first, et(2024, 7, 2, 12, 16, 10), config=config).due == [Due("evaluation", slot, "retry", None, 2)]
    second = first + [run("evaluation", slot, "failed", started=et(2024, 7, 2, 12, 17), attempt=2)]
    assert plan(second, et(2024, 7, 2, 12, 25), config=config).due == []


def test_crashed_run_is_recovered_at_once_as_the_next_attempt():
    runs = steady(et(2024, 7, 1, 23, 0)) + [
        run("pipeline", et(2024, 7, 1, 23, 29), "crashed", heartbeat=et(2024, 7, 1, 23, 31))
    ]
    assert plan(runs, et(2024, 7, 1, 23, 40)).due == [Due("pipeline", et(2024, 7, 1, 23, 29), "recovery", MON, 2)]


def test_running_row_with_stale_heartbeat_is_recovered():
    slot = et(2024, 7, 1, 23, 29)
    runs = steady(et(2024, 7, 1, 23, 0)) + [run("pipeline", slot, "running", heartbeat=et(2024, 7, 1, 23, 31))]
    assert plan(runs, et(2024, 7, 1, 23, 33)).due == []  # 120 s without a heartbeat: not stale yet
    assert plan(runs, et(2024, 7, 1, 23, 33, 1)).due == [Due("pipeline", slot, "recovery", MON, 2)]


def test_running_run_means_nothing_due_for_its_slot():
    slot = et(2024, 7, 1, 23, 29)
    runs = steady(et(2024, 7, 1, 23, 0)) + [run("pipeline", slot, "running", heartbeat=et(2024, 7, 1, 23, 39, 30))]
    p = plan(runs, et(2024, 7, 1, 23, 40))
    assert p.due == [] and p.missed == [] and p.alerts == []


def test_a_job_in_flight_holds_its_next_slot():
    busy = run(
        "evaluation",
        None,
        "running",
        trigger="manual",
        started=et(2024, 7, 2, 12, 10),
        heartbeat=et(2024, 7, 2, 12, 15),
    )
    runs = steady(et(2024, 7, 2, 12, 0)) + [busy]
    assert plan(runs, et(2024, 7, 2, 12, 15, 30)).due == []
    finished = steady(et(2024, 7, 2, 12, 0)) + [
        run("evaluation", None, trigger="manual", started=et(2024, 7, 2, 12, 10))
    ]
    assert plan(finished, et(2024, 7, 2, 12, 20)).due == [
        Due("evaluation", et(2024, 7, 2, 12, 15), "catch-up", None, 1)
    ]


def test_a_refused_start_is_not_an_attempt():
    slot = et(2024, 7, 2, 12, 15)
    runs = steady(et(2024, 7, 2, 12, 0)) + [run("evaluation", slot, "refused")]
    assert plan(runs, et(2024, 7, 2, 12, 15, 30)).due == [Due("evaluation", slot, "on-time", None, 1)]


def test_a_retry_superseded_by_a_newer_slot_is_missed():
    runs = steady(et(2024, 7, 2, 6, 0)) + [
        run("evaluation", et(2024, 7, 2, 6, 15), "failed", finished=et(2024, 7, 2, 6, 16))
    ]
    p = plan(runs, et(2024, 7, 2, 12, 15, 30))
    assert p.due == [Due("evaluation", et(2024, 7, 2, 12, 15), "on-time", None, 1)]
    assert p.missed == [Missed("evaluation", et(2024, 7, 2, 6, 15), None, "slot")]


def test_dead_letters_and_recorded_missed_slots_settle_their_slots():
    slot = et(2024, 7, 2, 12, 15)
    runs = steady(et(2024, 7, 2, 12, 0))
    assert plan(runs, et(2024, 7, 2, 12, 16), missed=[SlotRecord("evaluation", slot)]).due == []
    failed = runs + [run("evaluation", slot, "failed", finished=et(2024, 7, 2, 12, 16))]
    assert plan(failed, et(2024, 7, 2, 12, 30), dead=[SlotRecord("evaluation", slot)]).due == []
    dead_draw = steady(et(2024, 7, 1, 23, 0)) + [run("pipeline", et(2024, 7, 1, 23, 29), "failed")]
    p = plan(dead_draw, et(2024, 7, 2, 1, 0), dead=[SlotRecord("pipeline", et(2024, 7, 1, 23, 29), MON)])
    assert p.due == [] and p.missed == []


def test_interrupted_is_recovered_and_skipped_settles_the_slot():
    slot = et(2024, 7, 2, 12, 15)
    runs = steady(et(2024, 7, 2, 12, 0))
    interrupted = runs + [run("evaluation", slot, "interrupted", finished=et(2024, 7, 2, 12, 17))]
    assert plan(interrupted, et(2024, 7, 2, 12, 18)).due == [Due("evaluation", slot, "recovery", None, 2)]
    skipped = runs + [run("evaluation", slot, "skipped")]
    assert plan(skipped, et(2024, 7, 2, 12, 18)).due == []


def test_store_run_rows_are_accepted_as_history():
    from shiol_lib.store.runs import RunRow

    slot = et(2024, 7, 1, 23, 29)
    row = RunRow(
        run_id="row-1",
        job="pipeline",
        slot=slot.astimezone(UTC),
        trigger="scheduled",
        status="failed",
        started_at=slot.astimezone(UTC),
        finished_at=(slot + timedelta(minutes=3)).astimezone(UTC),
        error="boom",
        error_class="fetch",
        target_draw_date=MON,
        attempt=1,
        parent_run_id=None,
        seed=1,
        pid=7,
        host="h",
        heartbeat_at=None,
        archive_dir=None,
        draw_date=MON,
    )
    runs = [*steady(et(2024, 7, 1, 23, 0)), row]
    assert plan(runs, et(2024, 7, 1, 23, 33)).due == [Due("pipeline", slot, "retry", MON, 2)]


# --- waiting for published results ---------------------------------------------------------------


def _waiting_chain(attempts: int) -> list[RunRecord]:
    """Monday's pipeline slot, `attempts` runs that each ended `waiting` (no results published yet)."""
    slot = et(2024, 7, 1, 23, 29)
    runs, started = [], slot
    for attempt in range(1, attempts + 1):
        runs.append(
            run("pipeline", slot, "waiting", started=started, finished=started + timedelta(minutes=1), attempt=attempt)
        )
        started += timedelta(minutes=1 + min(2 ** (attempt - 1), 4))
    return runs


def test_waiting_pipeline_retries_on_the_capped_backoff():
    slot = et(2024, 7, 1, 23, 29)
    base = steady(et(2024, 7, 1, 23, 0))
    one = base + _waiting_chain(1)  # finished 23:30
    assert plan(one, et(2024, 7, 1, 23, 30, 59)).due == []
    assert plan(one, et(2024, 7, 1, 23, 31)).due == [Due("pipeline", slot, "retry", MON, 2)]
    five = base + _waiting_chain(5)
    last_finished = five[-1].finished_at
    assert plan(five, last_finished + timedelta(seconds=239)).due == []
    assert plan(five, last_finished + timedelta(seconds=240)).due == [Due("pipeline", slot, "retry", MON, 6)]
    # waiting attempts do not use up the retry budget: a failure after five of them still retries
    failed = five + [
        run("pipeline", slot, "failed", started=et(2024, 7, 2, 0, 0), finished=et(2024, 7, 2, 0, 1), attempt=6)
    ]
    assert plan(failed, et(2024, 7, 2, 0, 2)).due == [Due("pipeline", slot, "retry", MON, 7)]


def test_waiting_pipeline_past_the_deadline_is_missed_with_an_alert():
    slot = et(2024, 7, 1, 23, 29)
    runs = (
        steady(et(2024, 7, 1, 23, 0))
        + _waiting_chain(3)
        + [run("pipeline", slot, "waiting", started=et(2024, 7, 2, 4, 49), finished=et(2024, 7, 2, 4, 50), attempt=4)]
    )
    six_hours = PlannerConfig(waiting_deadline_s=6 * 3600.0)  # the default is 20 h (SHIOL_WAITING_DEADLINE_S)
    assert plan(runs, et(2024, 7, 2, 4, 53, 59), config=six_hours).due == []
    assert plan(runs, et(2024, 7, 2, 4, 54), config=six_hours).due == [Due("pipeline", slot, "retry", MON, 5)]
    p = plan(runs, et(2024, 7, 2, 4, 59), config=six_hours)  # 22:59 + 6 h; Wednesday's drawing is two days away
    assert p.due == []
    assert p.missed == [Missed("pipeline", slot, MON, "draw")]
    assert len(p.alerts) == 1 and "2024-07-01" in p.alerts[0] and "not published" in p.alerts[0]


# --- alerts ---------------------------------------------------------------------------------------


def _evaluation_runs(*statuses: str) -> list[RunRecord]:
    runs = steady(et(2024, 7, 1, 0, 0))
    slots = slots_between(CONFIG.jobs["evaluation"].spec, et(2024, 7, 1), et(2024, 7, 3))
    return runs + [run("evaluation", slot, status) for slot, status in zip(slots, statuses)]


def test_three_consecutive_failures_raise_an_alert():
    runs = _evaluation_runs("success", "failed", "timeout", "crashed")
    p = plan(runs, et(2024, 7, 2, 7, 0))
    assert p.alerts == [
        f"evaluation: the last 3 runs failed in a row (latest {runs[-1].run_id}: crashed "
        "at 2024-07-02T06:15:00-04:00 ET (2024-07-02T10:15:00+00:00 UTC))"
    ]
    # one incident for the streak, keyed by its first run: the key stays as the streak grows
    assert [(i.key, i.kind, i.job) for i in p.incidents] == [
        (f"evaluation:failures:{runs[-3].run_id}", "failures", "evaluation")
    ]
    longer = plan([*runs, run("evaluation", et(2024, 7, 2, 12, 15), "failed")], et(2024, 7, 2, 13, 0))
    assert [i.key for i in longer.incidents] == [p.incidents[0].key]


def test_two_failures_or_a_broken_streak_raise_nothing():
    assert plan(_evaluation_runs("success", "failed", "failed"), et(2024, 7, 2, 0, 0)).alerts == []
    assert plan(_evaluation_runs("failed", "failed", "waiting", "failed"), et(2024, 7, 2, 7, 0)).alerts == []
    config = PlannerConfig(failure_alert_after=2)
    alerts = plan(_evaluation_runs("success", "failed", "failed"), et(2024, 7, 2, 0, 0), config=config).alerts
    assert len(alerts) == 1 and alerts[0].startswith("evaluation: the last 2 runs failed")


# --- daylight saving -----------------------------------------------------------------------------


def test_saturday_pipeline_slot_on_the_spring_forward_weekend():
    runs = steady(et(2024, 3, 9, 23, 0), since=et(2024, 3, 2))
    p = plan(runs, datetime(2024, 3, 10, 4, 29, tzinfo=UTC))
    assert p.as_dict()["due"] == [
        {
            "job": "pipeline",
            "slot": "2024-03-09T23:29:00-05:00",
            "slot_utc": "2024-03-10T04:29:00+00:00",
            "reason": "on-time",
            "draw_date": "2024-03-09",
            "attempt": 1,
        }
    ]
    assert p.next["pipeline"].astimezone(UTC) == datetime(2024, 3, 12, 3, 29, tzinfo=UTC)  # Monday, now EDT


def test_saturday_pipeline_slot_on_the_fall_back_weekend():
    runs = steady(et(2024, 11, 2, 23, 0), since=et(2024, 10, 26))
    p = plan(runs, datetime(2024, 11, 3, 3, 29, tzinfo=UTC))
    assert p.as_dict()["due"][0]["slot"] == "2024-11-02T23:29:00-04:00"
    assert p.as_dict()["next"]["evaluation"] == "2024-11-03T06:15:00-05:00"
    assert p.next["pipeline"].astimezone(UTC) == datetime(2024, 11, 5, 4, 29, tzinfo=UTC)  # Monday, now EST


def test_skipped_0230_job_runs_once_at_0300_edt():
    config = PlannerConfig(jobs={"nightly": JobSchedule(parse_cron("30 2 * * *"))})
    runs = [run("nightly", et(2024, 3, 9, 2, 30))]
    p = plan(runs, datetime(2024, 3, 10, 7, 0, tzinfo=UTC), config=config)
    assert p.as_dict()["due"] == [
        {
            "job": "nightly",
            "slot": "2024-03-10T03:00:00-04:00",
            "slot_utc": "2024-03-10T07:00:00+00:00",
            "reason": "on-time",
            "draw_date": None,
            "attempt": 1,
        }
    ]
    runs.append(run("nightly", p.due[0].slot))
    after = plan(runs, et(2024, 3, 10, 3, 30), config=config)
    assert after.due == [] and after.missed == []
    assert after.next["nightly"] == et(2024, 3, 11, 2, 30)


def test_repeated_0130_job_runs_once():
    config = PlannerConfig(jobs={"nightly": JobSchedule(parse_cron("30 1 * * *"))})
    runs = [run("nightly", et(2024, 11, 2, 1, 30))]
    first = plan(runs, datetime(2024, 11, 3, 5, 30, tzinfo=UTC), config=config)  # 01:30 EDT
    assert first.as_dict()["due"][0]["slot"] == "2024-11-03T01:30:00-04:00"
    runs.append(run("nightly", first.due[0].slot))
    second = plan(runs, datetime(2024, 11, 3, 6, 30, tzinfo=UTC), config=config)  # 01:30 EST, the repeat
    assert second.due == [] and second.missed == []
    assert second.next["nightly"].isoformat() == "2024-11-04T01:30:00-05:00"


# --- refusals -------------------------------------------------------------------------------------


def test_naive_datetimes_are_refused():
    with pytest.raises(ScheduleError, match="no timezone"):
        plan([], datetime(2024, 7, 1, 23, 29))
    naive = RunRecord("r-naive", "evaluation", None, "manual", "success", datetime(2024, 7, 1, 12, 0))
    with pytest.raises(ScheduleError, match="r-naive"):
        plan([naive], et(2024, 7, 1, 23, 29))


def test_bad_config_and_unknown_status_are_refused():
    with pytest.raises(ScheduleError, match="retry_backoff_s"):
        PlannerConfig(retry_backoff_s=())
    with pytest.raises(ScheduleError, match="grace_s"):
        PlannerConfig(grace_s=-1)
    with pytest.raises(ScheduleError, match="CronSpec"):
        PlannerConfig(jobs={"x": ("0 0 * * *", False)})  # type: ignore[dict-item]
    with pytest.raises(ScheduleError, match="unknown status"):
        plan([run("evaluation", et(2024, 7, 1, 6, 15), "exploded")], et(2024, 7, 1, 7, 0))
    assert issubclass(ScheduleError, ShiolError)


def test_config_accepts_plain_tuples_for_jobs():
    config = PlannerConfig(jobs={"pipeline": (parse_cron("29 23 * * 1,3,6"), True)})
    assert config.jobs["pipeline"].drawing_linked is True


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    down_min=st.integers(0, 7 * 24 * 60),
    gap_min=st.integers(0, 8 * 24 * 60),
    grace_s=st.sampled_from([0, 600, 3600, 86400]),
)
def test_plans_after_any_downtime_are_coherent_and_idempotent(down_min, gap_min, grace_s):
    config = PlannerConfig(grace_s=grace_s)
    down = et(2024, 2, 26) + timedelta(minutes=down_min)  # spans the 2024-03-10 change
    at = (down.astimezone(UTC) + timedelta(minutes=gap_min)).astimezone(ET)
    runs = steady(down, since=et(2024, 2, 20), config=config)
    p = plan(runs, at, config=config)
    now = at.astimezone(UTC)
    assert len({d.job for d in p.due}) == len(p.due)  # at most one run per job
    for d in p.due:
        assert d.slot.astimezone(UTC) <= now and d.attempt == 1
        if d.job != "pipeline":
            assert now - d.slot.astimezone(UTC) <= timedelta(seconds=grace_s)
    owed = previous_draw(now - timedelta(seconds=config.draw_delay_s))
    window_open = now < draw_instant(draw_after(owed)).astimezone(UTC)
    pipeline_succeeded = any(r.job == "pipeline" and r.draw_date == owed for r in runs)
    if window_open and not pipeline_succeeded:
        assert [d.draw_date for d in of(p.due, "pipeline")] == [owed]
    for m in p.missed:
        assert m.slot.astimezone(UTC) <= now
        if m.kind == "slot":
            assert now - m.slot.astimezone(UTC) > timedelta(seconds=grace_s)
        else:
            assert m.job == "pipeline" and now >= draw_instant(draw_after(m.draw_date)).astimezone(UTC)
    assert len({(m.job, m.slot.astimezone(UTC)) for m in p.missed}) == len(p.missed)
    done = runs + [run(d.job, d.slot, started=at, draw_date=d.draw_date) for d in p.due]
    again = plan(done, at, missed=[SlotRecord(m.job, m.slot, m.draw_date) for m in p.missed], config=config)
    assert again.due == [] and again.missed == []


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([1, 5, 17, 60, 240, 900, 3000]), st.integers(0, 99)), min_size=20, max_size=120
    ),
)
def test_a_simulated_executor_never_double_runs_or_runs_a_closed_drawing(steps):
    """Drive plan -> execute -> record on a fake clock with random outcomes and downtimes."""
    runs: list[RunRecord] = []
    missed: list[SlotRecord] = []
    dead: list[SlotRecord] = []
    at = et(2024, 3, 1, 6, 0)
    for minutes, luck in steps:
        p = plan(runs, at, missed=missed, dead=dead)
        now = at.astimezone(UTC)
        for d in p.due:
            chain = [r for r in runs if r.job == d.job and r.slot == d.slot]
            assert d.attempt == 1 + max((r.attempt for r in chain), default=0)
            assert not any(r.status == "success" for r in chain)
            if d.job == "pipeline":
                assert now < draw_instant(draw_after(d.draw_date)).astimezone(UTC)
                assert not any(
                    r.job == "pipeline" and r.draw_date == d.draw_date and r.status == "success" for r in runs
                )
            outcomes = ["success"] * 6 + ["failed", "timeout", "crashed"] + (["waiting"] if d.job == "pipeline" else [])
            status = outcomes[(luck + d.attempt) % len(outcomes)]
            runs.append(
                run(
                    d.job,
                    d.slot,
                    status,
                    started=at,
                    attempt=d.attempt,
                    draw_date=d.draw_date,
                    finished=None if status == "crashed" else at + timedelta(seconds=30),
                    heartbeat=at + timedelta(seconds=20),
                )
            )
            if status in ("failed", "timeout", "crashed") and d.attempt >= CONFIG.max_attempts:
                dead.append(SlotRecord(d.job, d.slot, d.draw_date))
        recorded = {(m.job, m.slot.astimezone(UTC)) for m in missed}
        for m in p.missed:
            assert (m.job, m.slot.astimezone(UTC)) not in recorded
            missed.append(SlotRecord(m.job, m.slot, m.draw_date))
        at = (now + timedelta(minutes=minutes)).astimezone(ET)
    # every drawing whose window closed since the pipeline first ran is accounted for exactly once
    first = min((r.started_at for r in runs if r.job == "pipeline"), default=None)
    if first is None:
        return
    settled = plan(runs, at, missed=missed, dead=dead)
    missed += [SlotRecord(m.job, m.slot, m.draw_date) for m in settled.missed]
    day = previous_draw(first)
    while draw_instant(draw_after(day)).astimezone(UTC) <= at.astimezone(UTC):
        outcomes = [
            any(r.job == "pipeline" and r.draw_date == day and r.status == "success" for r in runs),
            any(m.job == "pipeline" and m.draw_date == day for m in missed),
            any(x.job == "pipeline" and x.draw_date == day for x in dead),
        ]
        passed = draw_instant(day).astimezone(UTC) + timedelta(seconds=CONFIG.draw_delay_s)
        if passed > first.astimezone(UTC) or any(r.job == "pipeline" and r.draw_date == day for r in runs):
            assert sum(outcomes) == 1, (day, outcomes)
        day = draw_after(day)
