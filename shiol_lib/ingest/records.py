"""Draw records: parse the three source formats and validate every record before it is stored.

Parsers never raise on a bad record: they return a :class:`Batch` holding the valid draws and a
:class:`Rejection` (source, record, reason) for each record that failed. Callers decide; the updater
writes nothing from a batch that has any rejection.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shiol_lib.domain.draw_calendar import NEW_YORK, draw_instant, is_draw_day
from shiol_lib.domain.draws import Draw
from shiol_lib.domain.game import MULTIPLIERS, WHITE_COUNT, matrix_for
from shiol_lib.errors import UnknownMatrixError

_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T00:00:00(?:\.0+)?)?$")
_US_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_RECORD_PREVIEW = 160


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


@dataclass
class Batch:
    """What one source response yielded."""

    source: str
    draws: list[Draw] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no record of the batch was rejected."""
        return not self.rejections


class _Invalid(Exception):
    """A record failed one validation rule (internal; becomes a :class:`Rejection`)."""


def validate_draw(
    draw_date: date, whites: Iterable[int], powerball: int, multiplier: int | None, *, now: datetime
) -> Draw:
    """Check one drawing against the calendar and its matrix; return it with sorted white balls.

    Raises ``ValueError`` with the reason when a rule fails.
    """
    try:
        return _validated(draw_date, list(whites), powerball, multiplier, now)
    except _Invalid as err:
        raise ValueError(str(err)) from None


def _validated(
    draw_date: date, whites: list[int], powerball: int, multiplier: int | None, now: datetime
) -> Draw:
    if not is_draw_day(draw_date):
        raise _Invalid(f"{draw_date.isoformat()} ({draw_date:%A}) is not a scheduled draw day")
    if draw_instant(draw_date) > now:
        raise _Invalid(
            f"{draw_date.isoformat()} is in the future (now {now.astimezone(NEW_YORK):%Y-%m-%d %H:%M} ET)"
        )
    try:
        matrix = matrix_for(draw_date)
    except UnknownMatrixError as err:
        raise _Invalid(str(err)) from None
    if len(whites) != WHITE_COUNT:
        raise _Invalid(f"expected {WHITE_COUNT} white balls, got {len(whites)}")
    if len(set(whites)) != WHITE_COUNT:
        raise _Invalid(f"white balls {whites} are not distinct")
    outside = [n for n in whites if not 1 <= n <= matrix.white_max]
    if outside:
        raise _Invalid(f"white ball(s) {outside} outside 1-{matrix.white_max} of the {matrix.name} matrix")
    if not 1 <= powerball <= matrix.pb_max:
        raise _Invalid(f"Powerball {powerball} outside 1-{matrix.pb_max} of the {matrix.name} matrix")
    if multiplier is not None and multiplier not in MULTIPLIERS:
        raise _Invalid(f"multiplier {multiplier} not in {sorted(MULTIPLIERS)} or empty")
    return Draw(draw_date, tuple(sorted(whites)), powerball, multiplier)


def _preview(record: Any) -> str:
    text = record if isinstance(record, str) else json.dumps(record, sort_keys=True, default=str)
    return text if len(text) <= _RECORD_PREVIEW else text[: _RECORD_PREVIEW - 3] + "..."


def _parse_date(raw: Any, *, us_format: bool = False) -> date:
    """``YYYY-MM-DD[T00:00:00[.000]]`` (JSON sources) or, for the CSV export, ``MM/DD/YYYY``."""
    if not isinstance(raw, str):
        raise _Invalid(f"draw date {raw!r} is not a string")
    pattern, want = (_US_DATE, "MM/DD/YYYY") if us_format else (_ISO_DATE, "YYYY-MM-DD")
    match = pattern.match(raw.strip())
    if not match:
        raise _Invalid(f"draw date {raw!r} is in an unknown format (want {want})")
    parts = [int(p) for p in match.groups()]
    year, month, day = (parts[2], parts[0], parts[1]) if us_format else parts
    try:
        return date(year, month, day)
    except ValueError as err:
        raise _Invalid(f"draw date {raw!r} is not a real date ({err})") from None


def _parse_int(raw: Any, what: str) -> int:
    if isinstance(raw, bool):
        raise _Invalid(f"{what} {raw!r} is not a number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    raise _Invalid(f"{what} {raw!r} is not a whole number")


def _parse_multiplier(raw: Any) -> int | None:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    return _parse_int(raw, "multiplier")


def _parse_six(raw: Any) -> tuple[list[int], int]:
    if not isinstance(raw, str):
        raise _Invalid(f"winning numbers {raw!r} are not a string")
    tokens = raw.split()
    if len(tokens) != WHITE_COUNT + 1:
        raise _Invalid(f"winning numbers {raw!r} do not hold six numbers")
    values = [_parse_int(t, "number") for t in tokens]
    return values[:WHITE_COUNT], values[WHITE_COUNT]


class _Collector:
    """Accumulates valid draws and rejections; refuses two different values for one date."""

    def __init__(self, source: str, now: datetime) -> None:
        self.batch = Batch(source)
        self._now = now
        self._seen: dict[date, Draw] = {}

    def add(self, record: Any, parse: Any) -> None:
        try:
            draw_date, whites, powerball, multiplier = parse(record)
            draw = _validated(draw_date, whites, powerball, multiplier, self._now)
        except _Invalid as err:
            self.reject(record, str(err))
            return
        earlier = self._seen.get(draw.draw_date)
        if earlier is None:
            self._seen[draw.draw_date] = draw
            self.batch.draws.append(draw)
        elif earlier != draw:
            self.reject(record, f"{draw.draw_date} appears twice with different values ({earlier.as_text()})")

    def reject(self, record: Any, reason: str) -> None:
        self.batch.rejections.append(Rejection(self.batch.source, _preview(record), reason))


def parse_ny_csv(text: str, *, source: str, now: datetime) -> Batch:
    """Parse the NY Open Data CSV export (``Draw Date``, ``Winning Numbers``, ``Multiplier``)."""
    collector = _Collector(source, now)
    reader = csv.DictReader(io.StringIO(text))
    required = {"Draw Date", "Winning Numbers"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        collector.reject(text[:80], f"CSV header {reader.fieldnames} lacks the columns {sorted(required)}")
        return collector.batch

    def parse(row: dict[str, Any]) -> tuple[date, list[int], int, int | None]:
        if None in row or any(row.get(k) is None for k in required):
            raise _Invalid("row has the wrong number of fields (truncated or malformed line)")
        whites, powerball = _parse_six(row["Winning Numbers"])
        multiplier = _parse_multiplier(row.get("Multiplier"))
        return _parse_date(row["Draw Date"], us_format=True), whites, powerball, multiplier

    for row in reader:
        collector.add(row, parse)
    return collector.batch


def _load_json(text: str, collector: _Collector) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        looks_html = text.lstrip()[:1] == "<"
        kind = "an HTML page, not JSON" if looks_html else f"malformed or truncated JSON ({err.msg} at char {err.pos})"
        collector.reject(text, f"response body is {kind}")
        return None


def parse_ny_json(text: str, *, source: str, now: datetime) -> Batch:
    """Parse a NY Open Data (Socrata ``d6yy-54nr``) JSON response: a list of draw records."""
    collector = _Collector(source, now)
    payload = _load_json(text, collector)
    if payload is None:
        return collector.batch
    if not isinstance(payload, list):
        collector.reject(payload, "response is not a JSON list of records")
        return collector.batch
    return parse_ny_records(payload, source=source, now=now)


def parse_ny_records(records: Iterable[Any], *, source: str, now: datetime) -> Batch:
    """Validate already-decoded NY Open Data records (e.g. several pages joined)."""
    collector = _Collector(source, now)

    def parse(record: Any) -> tuple[date, list[int], int, int | None]:
        if not isinstance(record, dict):
            raise _Invalid("record is not a JSON object")
        for key in ("draw_date", "winning_numbers"):
            if key not in record:
                raise _Invalid(f"record has no '{key}'")
        whites, powerball = _parse_six(record["winning_numbers"])
        return _parse_date(record["draw_date"]), whites, powerball, _parse_multiplier(record.get("multiplier"))

    for record in records:
        collector.add(record, parse)
    return collector.batch


def merge_batches(source: str, batches: Iterable[Batch]) -> Batch:
    """One batch holding every draw, rejection and pending drawing of ``batches``.

    The same date with two different values across the batches becomes a rejection.
    """
    merged = Batch(source)
    seen: dict[date, Draw] = {}
    for batch in batches:
        merged.rejections.extend(batch.rejections)
        merged.pending.extend(batch.pending)
        for draw in batch.draws:
            earlier = seen.get(draw.draw_date)
            if earlier is None:
                seen[draw.draw_date] = draw
                merged.draws.append(draw)
            elif earlier != draw:
                merged.rejections.append(Rejection(
                    source, draw.as_text(),
                    f"{draw.draw_date} answered twice with different values ({earlier.as_text()})",
                ))
    return merged


def parse_musl_json(text: str, *, source: str, now: datetime) -> Batch:
    """Parse one MUSL game service v3 drawing; only ``statusCode: complete`` yields a draw."""
    collector = _Collector(source, now)
    payload = _load_json(text, collector)
    if payload is None:
        return collector.batch
    if not isinstance(payload, dict):
        collector.reject(payload, "response is not one JSON drawing object")
        return collector.batch
    status = payload.get("statusCode")
    if status != "complete":
        if isinstance(status, str) and status in ("reporting", "processing"):
            try:
                collector.batch.pending.append(Pending(source, _parse_date(payload.get("drawDate")), status))
            except _Invalid as err:
                collector.reject(payload, str(err))
        else:
            collector.reject(payload, f"statusCode {status!r} is not one of complete/reporting/processing")
        return collector.batch
    collector.add(payload, _parse_musl_drawing)
    return collector.batch


def _parse_musl_drawing(payload: dict[str, Any]) -> tuple[date, list[int], int, int | None]:
    game = payload.get("game")
    if isinstance(game, dict) and str(game.get("code", "powerball")).lower() != "powerball":
        raise _Invalid(f"game code {game.get('code')!r} is not powerball")
    items = payload.get("numbers")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _Invalid("'numbers' is missing or not a list of objects")
    whites = [_parse_int(i.get("value"), "white ball") for i in items if i.get("ruleCode") == "white-balls"]
    reds = [_parse_int(i.get("value"), "Powerball") for i in items if i.get("ruleCode") == "powerball"]
    plays = [i.get("value") for i in items if i.get("itemCode") == "power-play"]
    if len(reds) != 1:
        raise _Invalid(f"expected one Powerball item, got {len(reds)}")
    if len(plays) > 1:
        raise _Invalid(f"expected at most one power-play item, got {len(plays)}")
    multiplier = _parse_multiplier(plays[0]) if plays else None
    return _parse_date(payload.get("drawDate")), whites, reds[0], multiplier
