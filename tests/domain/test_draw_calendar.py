from datetime import UTC, date, datetime, timedelta

import pytest

from shiol_lib.domain.draw_calendar import (
    NEW_YORK,
    draw_after,
    draw_instant,
    expected_draws,
    is_draw_day,
    next_draw,
    previous_draw,
)

UTC = UTC


def test_draw_days_wed_sat_and_monday_from_2021_08_23():
    assert is_draw_day(date(2021, 8, 18))  # Wednesday
    assert is_draw_day(date(2021, 8, 21))  # Saturday
    assert not is_draw_day(date(2021, 8, 16))  # Monday before Monday draws began
    assert is_draw_day(date(2021, 8, 23))  # first Monday drawing
    assert not is_draw_day(date(2021, 8, 24))  # Tuesday
    assert not is_draw_day(date(2024, 7, 5))  # Friday


def test_draw_instant_is_22_59_new_york_in_both_offsets():
    winter = draw_instant(date(2024, 1, 6))
    summer = draw_instant(date(2024, 7, 6))
    assert winter.astimezone(UTC) == datetime(2024, 1, 7, 3, 59, tzinfo=UTC)  # EST, UTC-5
    assert summer.astimezone(UTC) == datetime(2024, 7, 7, 2, 59, tzinfo=UTC)  # EDT, UTC-4


def test_previous_and_next_draw_at_the_boundary():
    instant = draw_instant(date(2024, 7, 1))
    assert previous_draw(instant) == date(2024, 7, 1)
    assert previous_draw(instant - timedelta(seconds=1)) == date(2024, 6, 29)
    assert next_draw(instant) == date(2024, 7, 3)
    assert next_draw(instant - timedelta(seconds=1)) == date(2024, 7, 1)


def test_next_draw_from_a_utc_instant_uses_new_york_dates():
    # 02:00 UTC on Sunday 2024-06-30 is still Saturday 22:00 in New York: the drawing is an hour away.
    at = datetime(2024, 6, 30, 2, 0, tzinfo=UTC)
    assert next_draw(at) == date(2024, 6, 29)
    assert previous_draw(at) == date(2024, 6, 26)


def test_spring_forward_weekend_2024_03_10():
    sat, mon = date(2024, 3, 9), date(2024, 3, 11)
    assert draw_instant(sat).utcoffset() == timedelta(hours=-5)
    assert draw_instant(mon).utcoffset() == timedelta(hours=-4)
    # Sunday 03:30 local does not exist; any instant that Sunday sees Saturday before, Monday next.
    sunday_noon = datetime(2024, 3, 10, 12, 0, tzinfo=NEW_YORK)
    assert previous_draw(sunday_noon) == sat
    assert next_draw(sunday_noon) == mon
    assert draw_instant(mon).astimezone(UTC) - draw_instant(sat).astimezone(UTC) == timedelta(hours=47)


def test_fall_back_weekend_2024_11_03():
    sat, mon = date(2024, 11, 2), date(2024, 11, 4)
    # 01:30 on 2024-11-03 happens twice; both instants lie between the same two drawings.
    first = datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # 01:30 EST
    for at in (first, second):
        assert previous_draw(at) == sat
        assert next_draw(at) == mon
    assert draw_instant(mon).astimezone(UTC) - draw_instant(sat).astimezone(UTC) == timedelta(hours=49)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="no timezone"):
        previous_draw(datetime(2024, 7, 1, 23, 0))


def test_expected_draws_over_the_bundled_range():
    days = expected_draws(date(2010, 2, 3), date(2024, 6, 29))
    assert len(days) == 1653
    assert days[0] == date(2010, 2, 3) and days[-1] == date(2024, 6, 29)
    assert date(2021, 8, 23) in days and date(2021, 8, 16) not in days


def test_expected_draws_is_empty_for_a_reversed_range_and_clipped_before_2009():
    assert expected_draws(date(2024, 7, 1), date(2024, 6, 1)) == []
    assert expected_draws(date(2008, 12, 1), date(2009, 1, 10)) == [date(2009, 1, 7), date(2009, 1, 10)]


def test_draw_after_crosses_the_monday_start():
    assert draw_after(date(2021, 8, 14)) == date(2021, 8, 18)
    assert draw_after(date(2021, 8, 21)) == date(2021, 8, 23)
    assert draw_after(date(2024, 6, 29)) == date(2024, 7, 1)
