"""Draw records: parse the three source formats and validate every record before it is stored.

Parsers never raise on a bad record or body: they return a :class:`Batch` holding the valid draws and
a :class:`Rejection` (source, record, reason) for each record that failed. A body that is not the
source's format at all (not JSON, truncated, nested too deeply, ``null``, the wrong shape, or anything
that made parsing fail unexpectedly) is one rejection plus :attr:`Batch.failure`: the source failed
and the updater asks the next one. Callers decide; the updater writes nothing from a batch that has
any rejection. The field rules live in :mod:`shiol_lib.ingest.parsing`.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shiol_lib.domain.draw_calendar import NEW_YORK, draw_instant, is_draw_day
from shiol_lib.domain.draws import Draw
from shiol_lib.domain.game import MULTIPLIERS, WHITE_COUNT, matrix_for
from shiol_lib.errors import MalformedBodyError, RecordError, UnknownMatrixError
from shiol_lib.ingest.parsing import (
    decode_json,
    parse_date,
    parse_int,
    parse_multiplier,
    parse_six,
    preview,
    short,
    shown,
)

log = logging.getLogger(__name__)

POWERBALL_GAME = "powerball"
_CSV_EXTRA = "(extra fields)"


@dataclass(frozen=True)
class Rejection:
    """A record that failed validation: where it came from, what it was, why it failed."""

    source: str
    record: str
    reason: str

    def as_text(self) -> str:
        """One line for a report."""
        return f"[{self.source}] {self.reason}: {self.record}"


@dataclass(frozen=True)
class Pending:
    """A drawing a source knows but has not finished publishing (MUSL ``reporting``/``processing``)."""

    source: str
    draw_date: date
    status: str


@dataclass(frozen=True)
class Misdated:
    """A source asked for the drawing of ``requested`` answered the drawing of ``answered``."""

    source: str
    requested: date
    answered: date

    def as_text(self) -> str:
        """One line for a report."""
        return (
            f"[{self.source}] asked for DrawDate {self.requested.isoformat()}, answered the drawing of "
            f"{self.answered.isoformat()}"
        )


@dataclass
class Batch:
    """What one source response yielded."""

    source: str
    draws: list[Draw] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    misdated: list[Misdated] = field(default_factory=list)
    failure: str | None = None  # the body as a whole was unusable: the source failed

    @property
    def ok(self) -> bool:
        """True when no record of the batch was rejected."""
        return not self.rejections


def body_failure(source: str, body: Any, reason: str) -> Batch:
    """The batch of an unusable body: one rejection (the body itself) and the failure reason."""
    return Batch(source, rejections=[Rejection(source, preview(body), reason)], failure=reason)


def validate_draw(
    draw_date: date, whites: Iterable[int], powerball: int, multiplier: int | None, *, now: datetime
) -> Draw:
    """Check one drawing against the calendar and its matrix; return it with sorted white balls.

    Raises ``ValueError`` with the reason when a rule fails.
    """
    try:
        return _validated(draw_date, list(whites), powerball, multiplier, now)
    except RecordError as err:
        raise ValueError(str(err)) from None


def _validated(draw_date: date, whites: list[int], powerball: int, multiplier: int | None, now: datetime) -> Draw:
    if not is_draw_day(draw_date):
        raise RecordError(f"{draw_date.isoformat()} ({draw_date:%A}) is not a scheduled draw day")
    # The date test first: a draw instant near 9999-12-31 cannot be converted to UTC.
    if draw_date > now.astimezone(NEW_YORK).date() or draw_instant(draw_date) > now:
        raise RecordError(
            f"{draw_date.isoformat()} is in the future (now {now.astimezone(NEW_YORK):%Y-%m-%d %H:%M} ET)"
        )
    try:
        matrix = matrix_for(draw_date)
    except UnknownMatrixError as err:
        raise RecordError(str(err)) from None
    if len(whites) != WHITE_COUNT:
        raise RecordError(f"expected {WHITE_COUNT} white balls, got {len(whites)}")
    if len(set(whites)) != WHITE_COUNT:
        raise RecordError(f"white balls {whites} are not distinct")
    outside = [n for n in whites if not 1 <= n <= matrix.white_max]
    if outside:
        raise RecordError(f"white ball(s) {outside} outside 1-{matrix.white_max} of the {matrix.name} matrix")
    if not 1 <= powerball <= matrix.pb_max:
        raise RecordError(f"Powerball {powerball} outside 1-{matrix.pb_max} of the {matrix.name} matrix")
    if multiplier is not None and multiplier not in MULTIPLIERS:
        raise RecordError(f"multiplier {multiplier} not in {sorted(MULTIPLIERS)} or empty")
    return Draw(draw_date, tuple(sorted(whites)), powerball, multiplier)


def _guarded(parse: Callable[..., Batch]) -> Callable[..., Batch]:
    """Wrap a parser so that no exception escapes it: an unexpected one fails the batch instead."""

    @functools.wraps(parse)
    def guarded(body: Any, *, source: str, **options: Any) -> Batch:
        try:
            return parse(body, source=source, **options)
        except Exception as err:  # a hostile body must never become a traceback
            log.warning("parsing a %s response failed unexpectedly", source, exc_info=True)
            return body_failure(source, body, f"response could not be parsed ({type(err).__name__}: {short(err)})")

    return guarded


class _Collector:
    """Accumulates valid draws and rejections; refuses two different values for one date."""

    def __init__(self, source: str, now: datetime) -> None:
        self.batch = Batch(source)
        self._now = now
        self._seen: dict[date, Draw] = {}

    def add(self, record: Any, parse: Callable[[Any], tuple[date, list[int], int, int | None]]) -> None:
        try:
            draw_date, whites, powerball, multiplier = parse(record)
            draw = _validated(draw_date, whites, powerball, multiplier, self._now)
        except RecordError as err:
            self.reject(record, str(err))
            return
        except Exception as err:  # an unforeseen shape: still one rejected record, never a traceback
            log.warning("a %s record failed unexpectedly", self.batch.source, exc_info=True)
            self.reject(record, f"record could not be read ({type(err).__name__}: {short(err)})")
            return
        earlier = self._seen.get(draw.draw_date)
        if earlier is None:
            self._seen[draw.draw_date] = draw
            self.batch.draws.append(draw)
        elif earlier != draw:
            self.reject(record, f"{draw.draw_date} appears twice with different values ({earlier.as_text()})")

    def reject(self, record: Any, reason: str) -> None:
        self.batch.rejections.append(Rejection(self.batch.source, preview(record), reason))


@_guarded
def parse_ny_csv(text: str, *, source: str, now: datetime) -> Batch:
    """Parse the NY Open Data CSV export (``Draw Date``, ``Winning Numbers``, ``Multiplier``)."""
    collector = _Collector(source, now)
    reader = csv.DictReader(io.StringIO(text), restkey=_CSV_EXTRA)
    required = {"Draw Date", "Winning Numbers"}
    try:
        fieldnames = reader.fieldnames
        if fieldnames is None or not required <= set(fieldnames):
            collector.reject(text[:80], f"CSV header {shown(fieldnames)} lacks the columns {sorted(required)}")
            collector.batch.failure = collector.batch.rejections[-1].reason
            return collector.batch
        for row in reader:
            collector.add(row, _parse_csv_row)
    except csv.Error as err:
        reason = f"CSV is malformed at line {reader.line_num} ({short(err)})"
        collector.reject(text[:80], reason)
        collector.batch.failure = reason
    return collector.batch


def _parse_csv_row(row: dict[str, Any]) -> tuple[date, list[int], int, int | None]:
    if _CSV_EXTRA in row or row.get("Draw Date") is None or row.get("Winning Numbers") is None:
        raise RecordError("row has the wrong number of fields (truncated or malformed line)")
    whites, powerball = parse_six(row["Winning Numbers"])
    return parse_date(row["Draw Date"], us_format=True), whites, powerball, parse_multiplier(row.get("Multiplier"))


def ny_page_records(text: str) -> list[Any]:
    """The records of one NY Open Data JSON page; raises :class:`MalformedBodyError` if it is not a list."""
    payload = decode_json(text)
    if payload is None:
        raise MalformedBodyError("response body is JSON null, not a list of records")
    if not isinstance(payload, list):
        raise MalformedBodyError(f"response is not a JSON list of records (a JSON {type(payload).__name__})")
    return payload


@_guarded
def parse_ny_json(text: str, *, source: str, now: datetime) -> Batch:
    """Parse a NY Open Data (Socrata ``d6yy-54nr``) JSON response: a list of draw records."""
    try:
        records = ny_page_records(text)
    except MalformedBodyError as err:
        return body_failure(source, text, str(err))
    return parse_ny_records(records, source=source, now=now)


@_guarded
def parse_ny_records(records: Iterable[Any], *, source: str, now: datetime) -> Batch:
    """Validate already-decoded NY Open Data records (e.g. several pages joined)."""
    collector = _Collector(source, now)
    for record in records:
        collector.add(record, _parse_ny_record)
    return collector.batch


def _parse_ny_record(record: Any) -> tuple[date, list[int], int, int | None]:
    if record is None:
        raise RecordError("record is JSON null, not a JSON object")
    if not isinstance(record, dict):
        raise RecordError(f"record is not a JSON object (a JSON {type(record).__name__})")
    for key in ("draw_date", "winning_numbers"):
        if key not in record:
            raise RecordError(f"record has no '{key}'")
    whites, powerball = parse_six(record["winning_numbers"])
    return parse_date(record["draw_date"]), whites, powerball, parse_multiplier(record.get("multiplier"))


def merge_batches(source: str, batches: Iterable[Batch]) -> Batch:
    """One batch holding every draw, rejection, pending and misdated answer and failure of ``batches``.

    The same date with two different values across the batches becomes a rejection.
    """
    merged = Batch(source)
    seen: dict[date, Draw] = {}
    failures: list[str] = []
    for batch in batches:
        merged.rejections.extend(batch.rejections)
        merged.pending.extend(batch.pending)
        merged.misdated.extend(batch.misdated)
        if batch.failure is not None:
            failures.append(batch.failure)
        for draw in batch.draws:
            earlier = seen.get(draw.draw_date)
            if earlier is None:
                seen[draw.draw_date] = draw
                merged.draws.append(draw)
            elif earlier != draw:
                merged.rejections.append(
                    Rejection(
                        source,
                        draw.as_text(),
                        f"{draw.draw_date} answered twice with different values ({earlier.as_text()})",
                    )
                )
    merged.failure = "; ".join(dict.fromkeys(failures)) or None
    return merged


@_guarded
def parse_musl_json(text: str, *, source: str, now: datetime, requested: date | None = None) -> Batch:
    """Parse one MUSL game service v3 drawing; only a Powerball ``statusCode: complete`` yields a draw.

    With ``requested`` (the ``DrawDate`` asked for), an answer about another drawing yields no draw
    but a :class:`Misdated` entry, so the caller can ask another source for that date.
    """
    collector = _Collector(source, now)
    try:
        payload = decode_json(text)
    except MalformedBodyError as err:
        return body_failure(source, text, str(err))
    if payload is None:
        return body_failure(source, text, "response body is JSON null, not a drawing object")
    if not isinstance(payload, dict):
        return body_failure(source, text, f"response is not one JSON drawing object (a JSON {type(payload).__name__})")
    try:
        _check_game(payload.get("game"))
        answered = parse_date(payload.get("drawDate"))
    except RecordError as err:
        collector.reject(payload, str(err))
        return collector.batch
    if requested is not None and answered != requested:
        collector.batch.misdated.append(Misdated(source, requested, answered))
        return collector.batch
    status = payload.get("statusCode")
    if status == "complete":
        collector.add(payload, _parse_musl_drawing)
    elif isinstance(status, str) and status in ("reporting", "processing"):
        collector.batch.pending.append(Pending(source, answered, status))
    else:
        collector.reject(payload, f"statusCode {shown(status)} is not one of complete/reporting/processing")
    return collector.batch


def _check_game(game: Any) -> None:
    """A MUSL ``game`` must be an object whose ``code`` is ``powerball``."""
    if game is None:
        raise RecordError(f"drawing names no game (want game.code {POWERBALL_GAME!r})")
    if not isinstance(game, dict):
        raise RecordError(f"game {shown(game)} is not an object with a code")
    code = game.get("code")
    if code is None:
        raise RecordError(f"game has no code (want {POWERBALL_GAME!r})")
    if not isinstance(code, str) or code.strip().lower() != POWERBALL_GAME:
        raise RecordError(f"game code {shown(code)} is not {POWERBALL_GAME}")


def _parse_musl_drawing(payload: dict[str, Any]) -> tuple[date, list[int], int, int | None]:
    items = payload.get("numbers")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RecordError("'numbers' is missing or not a list of objects")
    whites = [parse_int(i.get("value"), "white ball") for i in items if i.get("ruleCode") == "white-balls"]
    reds = [parse_int(i.get("value"), "Powerball") for i in items if i.get("ruleCode") == "powerball"]
    plays = [i.get("value") for i in items if i.get("itemCode") == "power-play"]
    if len(reds) != 1:
        raise RecordError(f"expected one Powerball item, got {len(reds)}")
    if len(plays) > 1:
        raise RecordError(f"expected at most one power-play item, got {len(plays)}")
    multiplier = parse_multiplier(plays[0]) if plays else None
    return parse_date(payload.get("drawDate")), whites, reds[0], multiplier
