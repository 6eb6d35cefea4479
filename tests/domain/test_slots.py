from datetime import UTC, datetime, time, timedelta

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.slots import CronSpec, ScheduleError, next_slot, parse_cron, previous_slot, slots_between
from shiol_lib.errors import ShiolError

UTC = UTC
ET = NEW_YORK


def et(y: int, m: int, d: int, hh: int = 0, mm: int = 0, fold: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ET, fold=fold)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def iso(slots: list[datetime]) -> list[str]:
    return [s.isoformat() for s in slots]


# --- parsing -----------------------------------------------------------------------------------------


def test_parse_the_default_schedules():
    pipeline = parse_cron("29 23 * * 1,3,6")
    assert (pipeline.minutes, pipeline.hours, pipeline.days_of_week) == ((29,), (23,), (1, 3, 6))
    assert pipeline.dow_restricted and not pipeline.dom_restricted
    evaluation = parse_cron("15 6,12,18 * * *")
    assert evaluation.hours == (6, 12, 18) and evaluation.days_of_month == tuple(range(1, 32))
    assert parse_cron("0 6 * * 0,2,4,5").days_of_week == (0, 2, 4, 5)


def test_parse_names_and_sunday_as_7():
    spec = parse_cron("0 12 * jan,jul sat,sun")
    assert spec.months == (1, 7) and spec.days_of_week == (0, 6)
    assert parse_cron("0 0 * * 7").days_of_week == (0,)
    assert parse_cron("0 0 * * mon-wed").days_of_week == (1, 2, 3)


@pytest.mark.parametrize(
    "expr, words",
    [
        ("0 0 * *", "4 field(s); expected 5"),
        ("0 0 * * * *", "6 field(s); expected 5"),
        ("", "0 field(s)"),
        ("@daily", "macros"),
        ("0 24 * * *", "out of range"),
        ("60 * * * *", "out of range"),
        ("0 0 L * *", "non-standard"),
        ("0 0 15W * *", "non-standard"),
        ("0 0 * * 5L", "non-standard"),
        ("0 0 * * 1#2", "non-standard"),
        ("0 0 ? * *", "non-standard"),
        ("x 0 * * *", "characters cron does not allow"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30,31 2 *", "never fires"),
    ],
)
def test_bad_expressions_raise_schedule_error_naming_expression(expr, words):
    with pytest.raises(ScheduleError) as info:
        parse_cron(expr)
    assert words in str(info.value)
    assert repr(expr) in str(info.value)
    assert isinstance(info.value, ShiolError)


def test_day_31_in_some_months_and_feb_29_are_valid():
    assert parse_cron("0 0 31 2,3 *").months == (2, 3)
    assert next_slot(parse_cron("0 0 29 2 *"), et(2096, 3, 1)) == et(2104, 2, 29)  # 2100 is no leap year
    assert parse_cron("0 0 30 2 1").dom_restricted  # Feb 30 never, but Mondays OR-ed in: fires


def test_parse_refuses_a_non_string():
    with pytest.raises(ScheduleError, match="must be a string"):
        parse_cron(None)  # type: ignore[arg-type]


# --- day semantics -----------------------------------------------------------------------------------


def test_both_day_fields_restricted_means_either_matches():
    # October 2024: the 13th is a Sunday; Fridays are the 4th, 11th, 18th, 25th.
    slots = slots_between(parse_cron("0 12 13 * 5"), et(2024, 10, 1), et(2024, 11, 1))
    assert [s.day for s in slots] == [4, 11, 13, 18, 25]


def test_only_the_restricted_day_field_counts():
    assert [s.day for s in slots_between(parse_cron("0 12 13 * *"), et(2024, 10, 1), et(2024, 11, 1))] == [13]
    fridays = slots_between(parse_cron("0 12 * * 5"), et(2024, 10, 1), et(2024, 11, 1))
    assert [s.day for s in fridays] == [4, 11, 18, 25]


@pytest.mark.parametrize(
    "expr",
    ["15 6,12,18 * * *", "29 23 * * 1,3,6", "0 6 * * 0,2,4,5", "0 12 13 * 5", "*/20 9-10 1-7 * mon", "5 4 */2 7 *"],
)
def test_agrees_with_croniter_away_from_dst(expr):
    start, end = datetime(2024, 7, 1), datetime(2024, 8, 31)
    it = croniter(expr, start)
    expected = []
    while (nxt := it.get_next(datetime)) <= end:
        expected.append(nxt.replace(tzinfo=ET))
    assert slots_between(parse_cron(expr), start.replace(tzinfo=ET), end.replace(tzinfo=ET)) == expected


# --- bounds, next and previous -----------------------------------------------------------------------


def test_slots_between_excludes_start_and_includes_end():
    spec = parse_cron("29 23 * * 1,3,6")
    assert slots_between(spec, et(2024, 7, 1, 23, 29), et(2024, 7, 6, 23, 29)) == [
        et(2024, 7, 3, 23, 29),
        et(2024, 7, 6, 23, 29),
    ]
    assert slots_between(spec, et(2024, 7, 6), et(2024, 7, 1)) == []


def test_next_is_strictly_after_and_previous_is_at_or_before():
    spec = parse_cron("15 6,12,18 * * *")
    assert next_slot(spec, et(2024, 7, 1, 12, 15)) == et(2024, 7, 1, 18, 15)
    assert next_slot(spec, et(2024, 7, 1, 18, 16)) == et(2024, 7, 2, 6, 15)
    assert previous_slot(spec, et(2024, 7, 1, 12, 15)) == et(2024, 7, 1, 12, 15)
    assert previous_slot(spec, et(2024, 7, 1, 12, 14)) == et(2024, 7, 1, 6, 15)
    assert previous_slot(spec, et(2024, 7, 1, 6, 14)) == et(2024, 6, 30, 18, 15)


def test_instants_in_other_zones_are_compared_as_instants():
    spec = parse_cron("29 23 * * 1,3,6")
    # 03:29 UTC on Tuesday 2024-07-02 is exactly Monday 23:29 EDT.
    assert previous_slot(spec, utc(2024, 7, 2, 3, 29)) == et(2024, 7, 1, 23, 29)
    assert next_slot(spec, utc(2024, 7, 2, 3, 28)).isoformat() == "2024-07-01T23:29:00-04:00"


def test_naive_datetimes_are_refused():
    spec = parse_cron("0 0 * * *")
    with pytest.raises(ScheduleError, match="no timezone"):
        slots_between(spec, datetime(2024, 1, 1), et(2024, 1, 2))
    with pytest.raises(ScheduleError, match="no timezone"):
        next_slot(spec, datetime(2024, 1, 1))
    with pytest.raises(ScheduleError, match="no timezone"):
        previous_slot(spec, datetime(2024, 1, 1))


def test_three_weeks_of_evaluation_slots_across_the_spring_forward_change():
    spec = parse_cron("15 6,12,18 * * *")
    slots = slots_between(spec, et(2024, 3, 1), et(2024, 3, 22))  # its speed: bench/run.py --parts slots
    assert len(slots) == 63
    assert all(s.minute == 15 and s.hour in (6, 12, 18) for s in slots)


# --- daylight saving ---------------------------------------------------------------------------------


def test_spring_forward_skipped_0230_runs_once_at_0300_edt():
    slots = slots_between(parse_cron("30 2 * * *"), et(2024, 3, 9), et(2024, 3, 12))
    assert iso(slots) == ["2024-03-09T02:30:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]
    assert slots[1].astimezone(UTC) == utc(2024, 3, 10, 7, 0)  # the transition instant


def test_fall_back_repeated_0130_runs_once_at_first_occurrence():
    slots = slots_between(parse_cron("30 1 * * *"), et(2024, 11, 2), et(2024, 11, 5))
    assert iso(slots) == ["2024-11-02T01:30:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]
    assert slots[1].astimezone(UTC) == utc(2024, 11, 3, 5, 30)  # EDT, not the EST repeat at 06:30 UTC
    assert slots[1].fold == 0


def test_spring_forward_day_collapses_skipped_half_hours_into_0300():
    slots = slots_between(parse_cron("*/30 * * * *"), et(2024, 3, 10), et(2024, 3, 11) - timedelta(minutes=1))
    assert len(slots) == 45  # 00:30 .. 23:30, but 02:00 and 02:30 do not exist: both run at 03:00 EDT, a slot too
    assert [s.strftime("%H:%M%z") for s in slots[2:5]] == ["01:30-0500", "03:00-0400", "03:30-0400"]


def test_fall_back_day_runs_each_wall_time_once():
    slots = slots_between(parse_cron("*/30 * * * *"), et(2024, 11, 3), et(2024, 11, 4) - timedelta(minutes=1))
    assert len(slots) == 47  # 00:30 .. 23:30 once each (the start, 00:00, is excluded); the repeat hour is skipped
    assert [s.strftime("%H:%M%z") for s in slots[1:5]] == ["01:00-0400", "01:30-0400", "02:00-0500", "02:30-0500"]
    assert slots[3].astimezone(UTC) - slots[2].astimezone(UTC) == timedelta(minutes=90)


def test_saturday_pipeline_slot_on_dst_weekends_in_utc():
    spec = parse_cron("29 23 * * 1,3,6")
    spring = slots_between(spec, et(2024, 3, 8), et(2024, 3, 12))
    assert [s.astimezone(UTC) for s in spring] == [utc(2024, 3, 10, 4, 29), utc(2024, 3, 12, 3, 29)]
    autumn = slots_between(spec, et(2024, 11, 1), et(2024, 11, 5))
    assert [s.astimezone(UTC) for s in autumn] == [utc(2024, 11, 3, 3, 29), utc(2024, 11, 5, 4, 29)]


def test_next_and_previous_across_the_skipped_hour():
    spec = parse_cron("30 2 * * *")
    assert next_slot(spec, et(2024, 3, 9, 2, 30)) == et(2024, 3, 10, 3, 0)
    assert next_slot(spec, et(2024, 3, 10, 3, 0)) == et(2024, 3, 11, 2, 30)
    assert previous_slot(spec, et(2024, 3, 10, 3, 0)).astimezone(UTC) == utc(2024, 3, 10, 7, 0)
    assert previous_slot(spec, utc(2024, 3, 10, 6, 59)) == et(2024, 3, 9, 2, 30)


# --- properties --------------------------------------------------------------------------------------

_DST_DAYS = [datetime(2024, 3, 10), datetime(2024, 11, 3), datetime(2025, 3, 9), datetime(2023, 11, 5)]


def _field(values: list[int]) -> str:
    return ",".join(str(v) for v in sorted(set(values))) if values else "*"


@st.composite
def cron_specs(draw: st.DrawFn) -> CronSpec:
    minutes = draw(st.lists(st.sampled_from([0, 1, 15, 29, 30, 45, 59]), max_size=3))
    hours = draw(st.lists(st.integers(0, 23) | st.sampled_from([1, 2, 3]), max_size=3))
    dom = draw(st.lists(st.integers(1, 31), max_size=3))
    dow = draw(st.lists(st.integers(0, 6), max_size=3))
    months = draw(st.sampled_from(["*", "*", "3,11", "1-6"]))
    if not dom and not dow and months == "*" and not hours:
        hours = [draw(st.integers(0, 23))]  # keep the brute-force oracle small
    expr = f"{_field(minutes)} {_field(hours)} {_field(dom)} {months} {_field(dow)}"
    try:
        return parse_cron(expr)
    except ScheduleError:
        return parse_cron("30 2 * * *")


starts = st.sampled_from(_DST_DAYS).flatmap(
    lambda day: st.integers(-36 * 60, 12 * 60).map(lambda m: (day + timedelta(minutes=m)).replace(tzinfo=ET))
) | st.datetimes(datetime(2023, 1, 1), datetime(2026, 1, 1)).map(lambda d: d.replace(tzinfo=ET))


def _oracle(spec: CronSpec, start: datetime, end: datetime) -> list[datetime]:
    """Minute by minute in UTC: a slot is a matching local wall time seen for the first time, or the
    spring-forward transition instant of a day whose skipped hour holds a matching wall time."""
    out = []
    minute = start.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute <= end:
        local = minute.astimezone(ET)
        day_ok = spec.matches_day(local.date())
        plain = day_ok and local.hour in spec.hours and local.minute in spec.minutes and local.fold == 0
        before = (minute - timedelta(minutes=1)).astimezone(ET)
        shifted = False
        if day_ok and local.utcoffset() > before.utcoffset():
            gap_start = (before + timedelta(minutes=1)).replace(tzinfo=None).time()  # wall time that never shows
            shifted = any(gap_start <= t < local.time() for t in spec.wall_times())
        if (plain or shifted) and minute > start:
            out.append(minute.astimezone(ET))
        minute += timedelta(minutes=1)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=cron_specs(), start=starts, span_h=st.integers(0, 60))
def test_slots_match_a_minute_by_minute_oracle(spec, start, span_h):
    end = start + timedelta(hours=span_h)
    slots = slots_between(spec, start, end)
    instants = [s.astimezone(UTC) for s in slots]
    assert instants == sorted(set(instants))  # strictly increasing
    assert instants == [s.astimezone(UTC) for s in _oracle(spec, start, end)]
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)  # same-zone comparisons would use wall time
    for slot in slots:
        instant = slot.astimezone(UTC)
        assert slot.tzinfo is ET and lo < instant <= hi
        wall_ok = slot.hour in spec.hours and slot.minute in spec.minutes and slot.fold == 0
        if not wall_ok:  # only the spring-forward transition instant may show another wall time
            assert (instant - timedelta(seconds=1)).astimezone(ET).utcoffset() < slot.utcoffset()
            assert slot.time() == time(3, 0) and spec.matches_day(slot.date())
            assert any(time(2, 0) <= t < time(3, 0) for t in spec.wall_times())


@settings(max_examples=60, deadline=None)
@given(spec=cron_specs(), at=starts)
def test_next_and_previous_bracket_the_instant(spec, at):
    nxt = next_slot(spec, at)
    prev = previous_slot(spec, at)
    assert prev is not None and prev.astimezone(UTC) <= at.astimezone(UTC) < nxt.astimezone(UTC)
    assert slots_between(spec, prev, nxt) == [nxt]
    assert previous_slot(spec, nxt) == nxt
