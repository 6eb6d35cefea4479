"""The draw calendar: when drawings happen, in America/New_York, and which are expected.

Drawings are at 22:59 ET on Wednesday and Saturday, and on Monday too from 2021-08-23. All instants
returned are timezone-aware; naive datetimes are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shiol_lib.domain.game import MATRICES

NEW_YORK = ZoneInfo("America/New_York")
DRAW_TIME = time(22, 59)
MONDAY_DRAWS_FROM = date(2021, 8, 23)
FIRST_KNOWN_DRAW = MATRICES[0].first_date
_MONDAY, _WEDNESDAY, _SATURDAY = 0, 2, 5


def is_draw_day(day: date) -> bool:
    """Whether a drawing is scheduled on ``day`` (ignores the era: see :func:`game.matrix_for`)."""
    weekday = day.weekday()
    if weekday in (_WEDNESDAY, _SATURDAY):
        return True
    return weekday == _MONDAY and day >= MONDAY_DRAWS_FROM


def draw_instant(day: date) -> datetime:
    """The scheduled instant of the drawing dated ``day`` (22:59 New York time, aware)."""
    return datetime.combine(day, DRAW_TIME, tzinfo=NEW_YORK)


def _as_utc(at: datetime) -> datetime:
    """``at`` in UTC, so comparisons never fall back to wall-clock arithmetic within one zone."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"instant {at!r} has no timezone; pass an aware datetime")
    return at.astimezone(UTC)


def previous_draw(at: datetime) -> date:
    """The latest drawing whose scheduled instant is at or before ``at``."""
    at = _as_utc(at)
    day = at.astimezone(NEW_YORK).date()
    while not (is_draw_day(day) and draw_instant(day) <= at):
        day -= timedelta(days=1)
    return day


def next_draw(at: datetime) -> date:
    """The first drawing whose scheduled instant is strictly after ``at``."""
    at = _as_utc(at)
    day = at.astimezone(NEW_YORK).date()
    while not (is_draw_day(day) and draw_instant(day) > at):
        day += timedelta(days=1)
    return day


def draw_after(day: date) -> date:
    """The drawing scheduled after the one dated ``day``."""
    day += timedelta(days=1)
    while not is_draw_day(day):
        day += timedelta(days=1)
    return day


def expected_draws(start: date, end: date) -> list[date]:
    """Every scheduled drawing dated from ``start`` to ``end`` inclusive, oldest first."""
    start = max(start, FIRST_KNOWN_DRAW)
    days = (end - start).days + 1
    return [d for d in (start + timedelta(days=i) for i in range(max(days, 0))) if is_draw_day(d)]


def missing_draws(stored: Sequence[date]) -> list[date]:
    """Scheduled drawings inside the stored range (first to last) that the store lacks."""
    if not stored:
        return []
    have = set(stored)
    return [d for d in expected_draws(min(have), max(have)) if d not in have]


def unfetched_draws(stored: Sequence[date], now: datetime) -> list[date]:
    """Drawings held after the latest stored one and up to ``now`` (published or not)."""
    if not stored:
        return []
    latest_due = previous_draw(now)
    return [d for d in expected_draws(max(stored), latest_due) if d > max(stored)]


@dataclass(frozen=True)
class Coverage:
    """The stored drawings against the calendar up to an instant: what the store lacks, and where.

    ``until`` is the latest drawing held by then; ``missing`` are the gaps inside the stored range (the
    update's "expected drawings still missing"), ``unfetched`` the drawings held after the last stored
    one (all of them for an empty store).
    """

    until: date
    last: date | None
    missing: tuple[date, ...]
    unfetched: tuple[date, ...]

    @property
    def lacking(self) -> int:
        """How many expected drawings up to ``until`` the store lacks."""
        return len(self.missing) + len(self.unfetched)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the counts, the last stored drawing and the latest one held (dates ISO)."""
        return {
            "lacking": self.lacking,
            "missing_in_range": len(self.missing),
            "not_yet_fetched": len(self.unfetched),
            "last_stored": self.last.isoformat() if self.last else None,
            "latest_held": self.until.isoformat(),
        }

    def as_text(self) -> str:
        """One line for people."""
        if self.lacking == 0:
            return f"the store holds every expected drawing up to {self.until}"
        where = (
            f"{len(self.missing)} inside its range, {len(self.unfetched)} after its last drawing {self.last}"
            if self.last
            else "it holds no drawing"
        )
        return f"the store lacks {self.lacking} expected drawing(s) up to {self.until} ({where})"


def draw_coverage(stored: Sequence[date], now: datetime) -> Coverage:
    """How ``stored`` covers the calendar up to ``now`` (see :class:`Coverage`)."""
    until = previous_draw(now)
    if not stored:
        return Coverage(until, None, (), tuple(expected_draws(FIRST_KNOWN_DRAW, until)))
    return Coverage(until, max(stored), tuple(missing_draws(stored)), tuple(unfetched_draws(stored, now)))


def iso_et(at: datetime) -> str:
    """An instant as ISO-8601 with its New York offset (``2024-07-01T23:29:00-04:00``)."""
    return _as_utc(at).astimezone(NEW_YORK).isoformat()


def iso_utc(at: datetime) -> str:
    """An instant as ISO-8601 in UTC (``2024-07-02T03:29:00+00:00``)."""
    return _as_utc(at).isoformat()


def et_and_utc(at: datetime) -> str:
    """An instant for people: New York time and UTC side by side, both ISO-8601 with their offset."""
    return f"{iso_et(at)} ET ({iso_utc(at)} UTC)"
