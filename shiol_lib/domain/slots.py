"""Cron slots: the instants a 5-field cron expression names in its timezone, DST-correct.

croniter only parses and expands the fields; the instants are enumerated here, so daylight saving is
exactly as the design says:

- a local time skipped by the spring-forward change (02:30 on 2024-03-10) runs at the next valid
  instant, the transition itself (03:00 EDT that day); several skipped times of one day collapse into
  that one instant, and into a slot the expression names at 03:00 itself;
- a repeated local time (01:30 on 2024-11-03) runs once, at its first occurrence (EDT, ``fold=0``).

Day matching follows croniter (and Vixie cron): when both day-of-month and day-of-week are restricted,
a day matching either one is enough; a field counts as restricted when croniter expands it to anything
but ``*`` (so ``*/2`` and ``1-31`` are restricted, ``*`` and ``0-7`` are not).

All functions take and return timezone-aware datetimes; naive ones are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.errors import ConfigError

UTC = UTC
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FULL_RANGES = (range(0, 60), range(0, 24), range(1, 32), range(1, 13), range(0, 7))
_PLAIN_FIELD = re.compile(r"^[0-9*,/-]+$")
_NON_STANDARD = re.compile(r"[LW#?]", re.IGNORECASE)
_NAMES = {
    "month": re.compile(r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec", re.IGNORECASE),
    "day-of-week": re.compile(r"sun|mon|tue|wed|thu|fri|sat", re.IGNORECASE),
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February may have 29
_SEARCH_DAYS = 366 * 9  # every valid expression fires at least once in 9 years (Feb 29: 2096 -> 2104)


class CatchUp(StrEnum):
    """What a job does about slots missed while the scheduler was down."""

    LATEST = "latest"  # run once for the latest missed slot (coalesce)
    NONE = "none"  # record them missed, run none
    EACH = "each"  # run each, at most ``max_catch_up``


class ScheduleError(ConfigError):
    """A schedule cannot be used: a bad cron expression, a naive datetime, an inconsistent config."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed 5-field cron expression: the expanded value sets of each field.

    ``days_of_week`` uses cron numbering (0 = Sunday .. 6 = Saturday; 7 is folded to 0). The wall
    times are read in ``timezone`` (an IANA name); the slot functions return instants in America/New_York.
    """

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    dom_restricted: bool
    dow_restricted: bool
    timezone: str = "America/New_York"

    @property
    def zone(self) -> ZoneInfo:
        """The timezone the wall times are read in."""
        return ZoneInfo(self.timezone)

    def matches_day(self, day: date) -> bool:
        """Whether the expression fires on the local calendar day ``day`` (month and day rules)."""
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.days_of_month
        dow_ok = (day.weekday() + 1) % 7 in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def wall_times(self) -> tuple[time, ...]:
        """The local wall-clock times of a matching day, in order."""
        return tuple(time(h, m) for h in self.hours for m in self.minutes)


def parse_cron(expr: str, timezone: str = "America/New_York") -> CronSpec:
    """Parse and validate a standard 5-field cron expression (minute hour day-of-month month day-of-week).

    Raises :class:`ScheduleError` naming the expression and what is wrong: a wrong field count, a
    non-standard token (``L``, ``W``, ``#``, ``?``, ``@daily``), a value out of range, a date that
    never occurs (``0 0 31 2 *``), or a ``timezone`` that is not an IANA name.
    """
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"unknown timezone {timezone!r} (an IANA name like America/New_York)") from None
    if not isinstance(expr, str):
        raise ScheduleError(f"cron expression must be a string, got {type(expr).__name__} {expr!r}")
    fields = expr.split()
    if expr.strip().startswith("@"):
        raise ScheduleError(f"cron expression {expr!r}: macros like @daily are not supported; write the 5 fields")
    if len(fields) != 5:
        raise ScheduleError(f"cron expression {expr!r} has {len(fields)} field(s); expected 5: {' '.join(FIELD_NAMES)}")
    for name, text in zip(FIELD_NAMES, fields):
        _check_field_syntax(expr, name, text)
    try:
        expanded = croniter(" ".join(fields)).expanded
    except (CroniterError, ValueError) as err:
        raise ScheduleError(f"cron expression {expr!r} is invalid: {err}") from err
    values = [_expand(field, full) for field, full in zip(expanded, _FULL_RANGES)]
    spec = CronSpec(
        expr=" ".join(fields),
        minutes=values[0],
        hours=values[1],
        days_of_month=values[2],
        months=values[3],
        days_of_week=tuple(sorted({d % 7 for d in values[4]})),
        dom_restricted=expanded[2] != ["*"],
        dow_restricted=expanded[4] != ["*"],
        timezone=timezone,
    )
    _check_fires(spec)
    return spec


def slots_between(spec: CronSpec, start: datetime, end: datetime) -> list[datetime]:
    """Every slot instant ``s`` with ``start < s <= end``, oldest first, aware in America/New_York."""
    lo, hi = to_utc(start, "start"), to_utc(end, "end")
    if hi <= lo:
        return []
    first, last = lo.astimezone(spec.zone).date(), hi.astimezone(spec.zone).date()
    out: list[datetime] = []
    for offset in range((last - first).days + 1):
        out.extend(s for s in _day_slots(spec, first + timedelta(days=offset)) if lo < s <= hi)
    return [s.astimezone(NEW_YORK) for s in out]


def next_slot(spec: CronSpec, after: datetime) -> datetime:
    """The first slot strictly after ``after`` (aware, America/New_York)."""
    lo = to_utc(after, "after")
    day = lo.astimezone(spec.zone).date()
    for offset in range(_SEARCH_DAYS):
        for slot in _day_slots(spec, day + timedelta(days=offset)):
            if slot > lo:
                return slot.astimezone(NEW_YORK)
    raise ScheduleError(f"cron expression {spec.expr!r} has no slot in the {_SEARCH_DAYS} days after {after}")


def previous_slot(spec: CronSpec, at: datetime) -> datetime | None:
    """The latest slot at or before ``at`` (aware, America/New_York), or None if none in 9 years."""
    hi = to_utc(at, "at")
    day = hi.astimezone(spec.zone).date()
    for offset in range(_SEARCH_DAYS):
        for slot in reversed(_day_slots(spec, day - timedelta(days=offset))):
            if slot <= hi:
                return slot.astimezone(NEW_YORK)
    return None


@lru_cache(maxsize=512)  # bounded: a per-minute cron holds 1,440 instants a day
def _day_slots(spec: CronSpec, day: date) -> tuple[datetime, ...]:
    """The UTC instants of ``spec`` on the local day ``day``, sorted, without duplicates."""
    if not spec.matches_day(day):
        return ()
    zone = spec.zone
    return tuple(sorted({_resolve_local(day, wall, zone) for wall in spec.wall_times()}))


def _resolve_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of local ``day wall``: first occurrence if repeated, the transition if skipped."""
    local = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the first occurrence
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # Skipped by spring-forward: fold=0 reads it with the old offset (later instant), fold=1 with the
    # new one (earlier instant); the transition lies between. Find the first second with the new offset.
    new_offset = instant.astimezone(zone).utcoffset()
    lo = local.replace(fold=1).astimezone(UTC)  # still on the old offset
    lo_s, hi_s = 0, int((instant - lo).total_seconds())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if (lo + timedelta(seconds=mid)).astimezone(zone).utcoffset() == new_offset:
            hi_s = mid
        else:
            lo_s = mid
    return lo + timedelta(seconds=hi_s)


def to_utc(at: datetime, name: str) -> datetime:
    """``at`` in UTC; a naive datetime (or not a datetime) raises :class:`ScheduleError` naming ``name``."""
    if not isinstance(at, datetime):
        raise ScheduleError(f"{name} must be a datetime, got {type(at).__name__} {at!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ScheduleError(f"{name} {at!r} has no timezone; pass an aware datetime (e.g. tzinfo=NEW_YORK)")
    return at.astimezone(UTC)


def _check_field_syntax(expr: str, name: str, text: str) -> None:
    names = _NAMES.get(name)
    plain = names.sub("0", text) if names else text
    if _PLAIN_FIELD.match(plain):
        return
    if _NON_STANDARD.search(plain):
        raise ScheduleError(f"cron expression {expr!r}: {name} field {text!r} uses non-standard syntax (L, W, # or ?)")
    raise ScheduleError(f"cron expression {expr!r}: {name} field {text!r} has characters cron does not allow")


def _expand(field: list[Any], full: range) -> tuple[int, ...]:
    if field == ["*"]:
        return tuple(full)
    return tuple(sorted({int(v) for v in field}))


def _check_fires(spec: CronSpec) -> None:
    if spec.dow_restricted and spec.dom_restricted:
        return  # either day rule matching is enough, and the weekdays occur in every month
    if any(d <= _DAYS_IN_MONTH[m - 1] for m in spec.months for d in spec.days_of_month):
        return
    raise ScheduleError(
        f"cron expression {spec.expr!r} never fires: day-of-month {list(spec.days_of_month)} "
        f"never occurs in month {list(spec.months)}"
    )
