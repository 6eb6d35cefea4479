"""Field and body parsing for the draw records: ASCII numbers, dates, the six numbers, JSON bodies.

Every helper raises :class:`RecordError` (one field) or :class:`MalformedBodyError` (a whole body)
with a reason that names the problem; :mod:`shiol_lib.ingest.records` turns them into rejections.
Digits are ASCII ``0-9`` only: ``str.isdigit`` and the regex class for digits also accept superscripts ("²") and
full-width digits ("０１"), which no source sends and ``int`` may not even read.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from shiol_lib.domain.game import WHITE_COUNT
from shiol_lib.errors import MalformedBodyError, RecordError

RECORD_PREVIEW = 160
_SHOWN = 60
_MAX_DIGITS = 6
_MAX_NUMBER = 10**_MAX_DIGITS - 1
_ASCII_INT = re.compile(r"[0-9]+")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T00:00:00(?:\.0+)?)?")
_US_DATE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")


def preview(record: Any) -> str:
    """A record (or body) as at most :data:`RECORD_PREVIEW` characters of text, for a rejection."""
    if isinstance(record, str):
        text = record
    else:
        try:
            text = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            try:
                text = json.dumps(record, default=str, ensure_ascii=False)
            except (TypeError, ValueError, RecursionError):
                text = f"<{type(record).__name__} that cannot be shown>"
    return text if len(text) <= RECORD_PREVIEW else text[: RECORD_PREVIEW - 3] + "..."


def shown(value: Any) -> str:
    """``repr(value)`` cut to a length that fits in a reason."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def short(err: BaseException) -> str:
    """An exception's message cut to one readable line."""
    text = " ".join(str(err).split())
    return text if len(text) < 200 else text[:197] + "..."


def parse_date(raw: Any, *, us_format: bool = False) -> date:
    """``YYYY-MM-DD[T00:00:00[.000]]`` (JSON sources) or, for the CSV export, ``MM/DD/YYYY``."""
    if not isinstance(raw, str):
        raise RecordError(f"draw date {shown(raw)} is not a string")
    pattern, want = (_US_DATE, "MM/DD/YYYY") if us_format else (_ISO_DATE, "YYYY-MM-DD")
    match = pattern.fullmatch(raw.strip())
    if not match:
        raise RecordError(f"draw date {shown(raw)} is in an unknown format (want {want}, ASCII digits)")
    parts = [int(p) for p in match.groups()]
    year, month, day = (parts[2], parts[0], parts[1]) if us_format else parts
    try:
        return date(year, month, day)
    except ValueError as err:
        raise RecordError(f"draw date {shown(raw)} is not a real date ({err})") from None


def parse_int(raw: Any, what: str) -> int:
    """A whole number from a JSON integer or a string of ASCII digits (no sign, no point)."""
    if isinstance(raw, bool):
        raise RecordError(f"{what} {shown(raw)} is not a number")
    if isinstance(raw, int):
        if raw < 0:
            raise RecordError(f"{what} {raw} is negative")
        if raw > _MAX_NUMBER:
            raise RecordError(f"{what} {shown(raw)} is too large to be a ball number")
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if _ASCII_INT.fullmatch(text):
            if len(text) > _MAX_DIGITS:
                raise RecordError(f"{what} {shown(raw)} has too many digits to be a ball number")
            return int(text)
        raise RecordError(f"{what} {shown(raw)} is not a whole number (ASCII digits 0-9 only)")
    raise RecordError(f"{what} {shown(raw)} is not a whole number")


def parse_multiplier(raw: Any) -> int | None:
    """The Power Play multiplier, or None when it is missing or blank."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    return parse_int(raw, "multiplier")


def parse_six(raw: Any) -> tuple[list[int], int]:
    """``"01 06 40 51 67 02"``: five white balls, then the Powerball."""
    if not isinstance(raw, str):
        raise RecordError(f"winning numbers {shown(raw)} are not a string")
    tokens = raw.split()
    if len(tokens) != WHITE_COUNT + 1:
        raise RecordError(f"winning numbers {shown(raw)} do not hold six numbers")
    values = [parse_int(t, "number") for t in tokens]
    return values[:WHITE_COUNT], values[WHITE_COUNT]


def decode_json(text: str) -> Any:
    """The decoded JSON of a response body; raises :class:`MalformedBodyError` naming the problem.

    Besides syntax errors, ``json.loads`` raises ``RecursionError`` on deep nesting and
    ``ValueError`` on integers of more than 4,300 digits: both are malformed bodies here.
    """
    if not text.strip():
        raise MalformedBodyError("response body is empty, not JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip()[:1] == "<":
            raise MalformedBodyError("response body is an HTML page, not JSON") from None
        raise MalformedBodyError(
            f"response body is malformed or truncated JSON ({err.msg} at char {err.pos})"
        ) from None
    except RecursionError:
        raise MalformedBodyError("response body is JSON nested too deeply to read") from None
    except ValueError as err:
        raise MalformedBodyError(f"response body is malformed JSON ({short(err)})") from None
