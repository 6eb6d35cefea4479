"""Fault injection: bad records, bad bodies and hostile sources, each met by a real update.

Every case runs :func:`update_draws` against the real local servers of ``tests/fakesources.py`` (or,
for NY CSV rows, a CSV file as the bundled snapshot) and a copy of a seeded store in ``tmp_path``,
then asserts that

1. the report names the problem: a rejection (source, record, reason) whose reason says it, and/or
   a failed attempt followed by the next source (MUSL -> NY Open Data -> the bundled snapshot);
2. the draws table is unchanged (a checksum of every column but ``fetched_at``): the valid records
   that came beside a bad one were not written either;
3. the update finished and recorded its report (a ``data_updates`` row), with no traceback.

The corpus is generated from the validation rules (:data:`VALUE_RULES`, each rendered in turn as a
NY JSON record, a NY CSV row or a MUSL drawing, so every rule is met and the formats mix) and from the
faults of issue 10 (bodies, game, date, size, status). The field parsers are shared by the formats;
tests/ingest/test_records.py checks the same rules format by format, without an update around them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fakesources import (
    MISSING_DRAWS,
    MUSL_PATH,
    NEWER_DRAWS,
    NY_PATH,
    Fault,
    MuslServer,
    NyServer,
    history_draws,
    html_page,
    http_error,
    huge_body,
    raw_body,
    truncated_json,
)
from update_support import (
    NOW,
    copy_store,
    draws_checksum,
    musl_source,
    ny_source,
    recorded_report,
    seed_template,
)

from shiol_lib.domain.draws import Draw
from shiol_lib.ingest.sources import BundledSource
from shiol_lib.ingest.update import UpdateReport, update_draws
from shiol_lib.store import Store

pytestmark = pytest.mark.faults

NEWEST = NEWER_DRAWS[-1].draw_date  # 2024-07-06: wanted, and what MUSL answers as "latest"
JUNE_29 = history_draws()[-1]  # the last stored drawing
CSV_HEADER = "Draw Date,Winning Numbers,Multiplier\n"
CAP = 64_000  # SHIOL_HTTP_MAX_BYTES of the oversize cases
NO_DIGITS = "is not a whole number (ASCII digits 0-9 only)"


@dataclass(frozen=True)
class Rule:
    """One bad value of a record: rendered in every format that can carry it."""

    name: str
    day: date | tuple[str, str, str] | Any  # a date, (y, m, d) strings, or a raw NY/MUSL value
    numbers: Any  # "w w w w w pb" or a raw value
    multiplier: Any  # None: left out
    expect: str  # a part of the reason, the same in every format


V = "07 19 28 44 65 21"  # valid numbers of the current matrix
VALUE_RULES: list[Rule] = [
    # dates: format, impossible, not a draw day, future, before 2009
    *(
        Rule(f"date-format-{i}", raw, V, "2", "is in an unknown format")
        for i, raw in enumerate(
            [
                "2024/07/06",
                "07/06/2024",
                "July 6, 2024",
                "2024-7-6",
                "20240706",
                "2024-07-06T12:00:00.000",
                "",
                "\uff12\uff10\uff12\uff14-07-06",
                "2024-07-0\u2076",
                "2024-07-0\u0666",
            ]
        )
    ),
    *(
        Rule(f"date-impossible-{'-'.join(ymd)}", ymd, V, "2", "is not a real date")
        for ymd in [
            ("2024", "02", "30"),
            ("2023", "02", "29"),
            ("2024", "13", "06"),
            ("2024", "00", "06"),
            ("0000", "01", "05"),
        ]
    ),
    *(
        Rule(f"date-not-draw-day-{d}", d, V, "2", "is not a scheduled draw day")
        for d in [date(2024, 7, 2), date(2024, 7, 4), date(2024, 7, 5), date(2024, 7, 7), date(2021, 8, 16)]
    ),
    *(
        Rule(f"date-future-{d}", d, V, "is in the future", "is in the future")
        for d in [date(2024, 7, 8), date(2024, 7, 10), date(2030, 1, 2), date(9999, 12, 29)]
    ),
    *(
        Rule(f"date-before-2009-{d}", d, V, "2", "no known Powerball matrix")
        for d in [date(2008, 12, 31), date(2009, 1, 3), date(1999, 1, 2)]
    ),
    # numbers outside the matrix of their era (tagged by date)
    Rule("era-2009-white-60", date(2011, 1, 5), "07 19 28 44 60 21", "2", "[60] outside 1-59 of the 2009-59/39"),
    Rule("era-2009-pb-40", date(2011, 1, 5), "07 19 28 44 58 40", "2", "Powerball 40 outside 1-39"),
    Rule("era-2012-white-60", date(2014, 6, 28), "07 19 28 44 60 21", "2", "[60] outside 1-59 of the 2012-59/35"),
    Rule("era-2012-pb-36", date(2014, 6, 28), "07 19 28 44 58 36", "2", "Powerball 36 outside 1-35"),
    Rule("era-2012-first-pb-36", date(2012, 1, 18), "07 19 28 44 58 36", None, "Powerball 36 outside 1-35"),
    Rule("era-2012-last-white-65", date(2015, 10, 3), "07 19 28 44 65 21", "2", "[65] outside 1-59"),
    Rule("era-2015-white-70", NEWEST, "07 19 28 44 70 21", "2", "[70] outside 1-69 of the 2015-69/26"),
    Rule("era-2015-pb-27", NEWEST, "07 19 28 44 65 27", "2", "Powerball 27 outside 1-26"),
    Rule("white-0", NEWEST, "00 19 28 44 65 21", "2", "[0] outside 1-69"),
    Rule("pb-0", NEWEST, "07 19 28 44 65 00", "2", "Powerball 0 outside 1-26"),
    Rule("duplicate-whites", NEWEST, "07 19 19 44 65 21", "2", "are not distinct"),
    Rule("all-whites-equal", NEWEST, "07 07 07 07 07 21", "2", "are not distinct"),
    # multipliers
    *(
        Rule(f"multiplier-{m}", NEWEST, V, m, f"multiplier {int(m)} not in [2, 3, 4, 5, 10]")
        for m in ["0", "1", "6", "7", "11"]
    ),
    *(
        Rule(f"multiplier-text-{i}", NEWEST, V, m, "is not a whole number")
        for i, m in enumerate(["-2", "2.5", "two", "\u00b2", "\uff12", "3x"])
    ),
    # digits that are not ASCII, and numbers that are not whole
    *(
        Rule(f"number-{name}", NEWEST, f"07 19 28 44 {token} 21", "2", f"{token!r} {NO_DIGITS}")
        for name, token in [
            ("superscript", "\u00b2"),
            ("fullwidth", "\uff16\uff15"),
            ("arabic-indic", "\u0666\u0665"),
            ("devanagari", "\u096c\u096b"),
            ("math-bold", "\U0001d7d4\U0001d7d3"),
            ("negative", "-65"),
            ("float", "65.0"),
            ("plus", "+65"),
            ("hex", "0x41"),
            ("exponent", "6e1"),
            ("underscore", "6_5"),
        ]
    ),
    Rule("number-too-many-digits", NEWEST, "07 19 28 44 0000000065 21", "2", "has too many digits"),
]
# Wrong counts are NY/CSV-only (MUSL lists items, see MUSL_RULES).
COUNT_RULES = [
    Rule(f"count-{n}", NEWEST, numbers, "2", "do not hold six numbers")
    for n, numbers in [
        ("five", "07 19 28 44 65"),
        ("seven", "07 19 28 44 65 21 03"),
        ("none", ""),
        ("joined", "0719284465 21"),
    ]
]


@dataclass(frozen=True)
class Case:
    """One fault: how to serve it (``kind``), and what the report must say (``expect``)."""

    kind: str  # ny-record | ny-csv | ny-body | musl-drawing | musl-body | musl-misdated
    expect: str
    value: Any  # the record, CSV row, Fault factory, drawing, or (requested date, drawing)
    gzip: bool = False
    max_bytes: int = 5_000_000  # SHIOL_HTTP_MAX_BYTES of the client


def _iso(day: Any, *, ny: bool) -> Any:
    if isinstance(day, date):
        return f"{day.isoformat()}T00:00:00.000" if ny else day.isoformat()
    if isinstance(day, tuple):
        return "-".join(day) + ("T00:00:00.000" if ny else "")
    return day


def musl_payload(day: Any, whites: list[Any], pb: Any, play: Any = None, **fields: Any) -> dict[str, Any]:
    """A MUSL v3 drawing with raw (possibly bad) values; ``fields`` replace or (``...``) drop keys."""
    items = [
        {"itemCode": "white-balls", "ruleCode": "white-balls", "value": v, "orderDrawn": i}
        for i, v in enumerate(whites, start=1)
    ]
    if pb is not ...:
        items.append({"itemCode": "powerball", "ruleCode": "powerball", "value": pb, "orderDrawn": 6})
    if play is not None:
        items.append({"itemCode": "power-play", "ruleCode": "power-play", "value": play, "orderDrawn": 7})
    payload = {
        "drawId": "1",
        "game": {"code": "powerball", "name": "Powerball"},
        "statusCode": "complete",
        "drawDate": _iso(day, ny=False),
        "numbers": items,
    }
    payload.update(fields)
    return {k: v for k, v in payload.items() if v is not ...}


def _rendered(rule: Rule, form: str) -> tuple[str, Case] | None:
    """``rule`` as a case of ``form`` (``ny-json``, ``ny-csv``, ``musl``), or None if it cannot carry it."""
    if form == "ny-json":
        record = {"draw_date": _iso(rule.day, ny=True), "winning_numbers": rule.numbers}
        if rule.multiplier is not None:
            record["multiplier"] = rule.multiplier
        return f"ny-json-{rule.name}", Case("ny-record", rule.expect, record)
    if form == "ny-csv":
        if isinstance(rule.day, str):
            return None  # a raw NY/MUSL date string; the CSV date rules are below
        us = f"{rule.day:%m/%d/%Y}" if isinstance(rule.day, date) else f"{rule.day[1]}/{rule.day[2]}/{rule.day[0]}"
        return f"ny-csv-{rule.name}", Case("ny-csv", rule.expect, f"{us},{rule.numbers},{rule.multiplier or ''}")
    tokens = rule.numbers.split()
    if len(tokens) != 6:
        return None  # MUSL lists items: its count rules are below
    return f"musl-{rule.name}", Case(
        "musl-drawing", rule.expect, musl_payload(rule.day, tokens[:5], tokens[5], rule.multiplier)
    )


def _corpus() -> dict[str, Case]:
    """Each value rule once, in the formats by turns (the next one when a format cannot carry it)."""
    forms = ["ny-json", "ny-csv", "musl"]
    cases: dict[str, Case] = {}
    for i, rule in enumerate([*VALUE_RULES, *COUNT_RULES]):
        for form in forms[i % 3 :] + forms[: i % 3]:
            rendered = _rendered(rule, form)
            if rendered is not None:
                cases[rendered[0]] = rendered[1]
                break
    return cases


CASES = _corpus()
W, PB = ["44", "07", "65", "19", "28"], "21"
for name, record, expect in [  # NY records that are not records, or whose fields have the wrong JSON type
    ("record-null", None, "record is JSON null, not a JSON object"),
    ("record-list", ["2024-07-06T00:00:00.000", V], "record is not a JSON object (a JSON list)"),
    ("record-string", "2024-07-06 " + V, "record is not a JSON object (a JSON str)"),
    ("record-number", 20240706, "record is not a JSON object (a JSON int)"),
    ("record-bool", True, "record is not a JSON object (a JSON bool)"),
    ("no-draw-date", {"winning_numbers": V}, "record has no 'draw_date'"),
    ("no-numbers", {"draw_date": "2024-07-06T00:00:00.000"}, "record has no 'winning_numbers'"),
    ("numbers-list", {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": V.split()}, "are not a string"),
    ("numbers-int", {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": 7192844652}, "are not a string"),
    ("numbers-null", {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": None}, "are not a string"),
    ("numbers-object", {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": {"w": V}}, "are not a string"),
    ("date-int", {"draw_date": 20240706, "winning_numbers": V}, "draw date 20240706 is not a string"),
    ("date-null", {"draw_date": None, "winning_numbers": V}, "draw date None is not a string"),
    ("date-object", {"draw_date": {"$date": "2024-07-06"}, "winning_numbers": V}, "is not a string"),
    (
        "multiplier-true",
        {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": V, "multiplier": True},
        "multiplier True is not a number",
    ),
    (
        "multiplier-float",
        {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": V, "multiplier": 2.0},
        "multiplier 2.0 is not a whole number",
    ),
    (
        "multiplier-negative-int",
        {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": V, "multiplier": -2},
        "multiplier -2 is negative",
    ),
    (
        "multiplier-object",
        {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": V, "multiplier": {"x": 2}},
        "is not a whole number",
    ),
]:
    CASES[f"ny-json-{name}"] = Case("ny-record", expect, record)
for name, row, expect in [  # CSV rows: US dates and the line itself
    ("date-iso", "2024-07-06", "is in an unknown format (want MM/DD/YYYY"),
    ("date-short", "7/6/2024", "unknown format"),
    ("date-two-digit-year", "07/06/24", "unknown format"),
    ("date-dots", "07.06.2024", "unknown format"),
    ("date-fullwidth", "\uff10\uff17/06/2024", "unknown format"),
]:
    CASES[f"ny-csv-{name}"] = Case("ny-csv", expect, f"{row},{V},2")
for name, row, expect in [
    ("extra-field", f"07/06/2024,{V},2,extra", "wrong number of fields"),
    ("missing-field", "07/06/2024", "wrong number of fields"),
    ("huge-field", "07/06/2024," + "7" * 200_000 + ",2", "CSV is malformed at line"),
]:
    CASES[f"ny-csv-{name}"] = Case("ny-csv", expect, row)
for name, payload, expect in [  # MUSL: the game, the status, the list of numbers
    (
        "game-megamillions",
        musl_payload(NEWEST, W, PB, game={"code": "megamillions", "name": "Mega Millions"}),
        "game code 'megamillions' is not powerball",
    ),
    ("game-cash4life", musl_payload(NEWEST, W, PB, game={"code": "cash4life"}), "game code 'cash4life' is not"),
    ("game-missing", musl_payload(NEWEST, W, PB, game=...), "drawing names no game"),
    ("game-null", musl_payload(NEWEST, W, PB, game=None), "drawing names no game"),
    ("game-no-code", musl_payload(NEWEST, W, PB, game={"name": "Powerball"}), "game has no code"),
    ("game-code-null", musl_payload(NEWEST, W, PB, game={"code": None}), "game has no code"),
    ("game-code-number", musl_payload(NEWEST, W, PB, game={"code": 1}), "game code 1 is not powerball"),
    ("game-string", musl_payload(NEWEST, W, PB, game="powerball"), "is not an object with a code"),
    *(
        (f"status-{i}", musl_payload(NEWEST, W, PB, statusCode=s), "is not one of complete/reporting/processing")
        for i, s in enumerate(
            [None, "", "Complete", "COMPLETE", "cancelled", "unknown", 1, ["complete"], {"c": 1}, ...]
        )
    ),
    ("whites-four", musl_payload(NEWEST, W[:4], PB), "expected 5 white balls, got 4"),
    ("whites-six", musl_payload(NEWEST, [*W, "33"], PB), "expected 5 white balls, got 6"),
    ("no-powerball", musl_payload(NEWEST, W, ...), "expected one Powerball item, got 0"),
    ("two-power-plays", musl_payload(NEWEST, W, PB, "2", numbers=None), "'numbers' is missing"),
    ("numbers-strings", musl_payload(NEWEST, W, PB, numbers=["44", "07"]), "'numbers' is missing or not a list"),
    ("value-bool", musl_payload(NEWEST, [True, *W[1:]], PB), "white ball True is not a number"),
    ("value-null", musl_payload(NEWEST, [None, *W[1:]], PB), "white ball None is not a whole number"),
    ("value-float", musl_payload(NEWEST, [44.0, *W[1:]], PB), "white ball 44.0 is not a whole number"),
    ("value-object", musl_payload(NEWEST, W, {"v": 21}), "Powerball {'v': 21} is not a whole number"),
    ("value-negative-int", musl_payload(NEWEST, W, -21), "Powerball -21 is negative"),
    ("date-missing", musl_payload(NEWEST, W, PB, drawDate=...), "draw date None is not a string"),
]:
    CASES[f"musl-{name}"] = Case("musl-drawing", expect, payload)


def _body(text: str) -> Callable[[], Fault]:
    return lambda: raw_body(text)


BODIES: list[tuple[str, Callable[[], Fault], str, bool]] = [  # (name, fault, expect, gzip)
    ("html-page", html_page, "response body is an HTML page, not JSON", False),
    ("truncated-json", truncated_json, "response body is malformed or truncated JSON", False),
    ("null", _body("null"), "response body is JSON null", False),
    ("empty", _body(""), "response body is empty", False),
    ("deep-list", _body("[" * 200_000), "nested too deeply", False),
    ("deep-object", _body('{"a":' * 100_000), "nested too deeply", False),
    ("huge-integer", _body("[" + "7" * 5000 + "]"), "Exceeds the limit (4300 digits)", False),
    ("unicode-garbage", _body("\u00b2\uff12"), "malformed or truncated JSON", False),
    (
        "oversize-chunked",
        lambda: huge_body(50_000_000, pattern=b"["),
        f"{CAP:,} byte limit (SHIOL_HTTP_MAX_BYTES)",
        False,
    ),
    ("oversize-declared", lambda: huge_body(50_000_000, declare_length=True), f"{CAP:,} byte limit", False),
    ("oversize-gzip", _body("[" + " " * 1_000_000 + "]"), f"{CAP:,} byte limit", True),
    ("http-500", lambda: http_error(500), "HTTP 500", False),
    ("http-503", lambda: http_error(503), "HTTP 503", False),
    ("http-429-long-retry-after", lambda: http_error(429, retry_after=3600), "HTTP 429", False),
]
for name, fault, expect, gzip in BODIES:
    cap = CAP if name.startswith("oversize") else 5_000_000
    CASES[f"musl-body-{name}"] = Case("musl-body", expect, fault, gzip, cap)
    CASES[f"ny-body-{name}"] = Case("ny-body", expect, fault, gzip, cap)
for name, text, expect in [
    ("object", '{"error": "nope"}', "not a JSON list of records (a JSON dict)"),
    ("string", '"2024-07-06"', "a JSON str"),
    ("number", "42", "a JSON int"),
    ("bool", "true", "a JSON bool"),
]:
    CASES[f"ny-body-{name}"] = Case("ny-body", expect, _body(text))
for name, text, expect in [
    ("list", json.dumps([musl_payload(NEWEST, W, PB)]), "not one JSON drawing object (a JSON list)"),
    ("string", '"complete"', "a JSON str"),
    ("http-401", None, "HTTP 401"),
]:
    CASES[f"musl-body-{name}"] = Case("musl-body", expect, (lambda: http_error(401)) if text is None else _body(text))
for requested, answered, status in [  # MUSL answers another drawing than the DrawDate asked
    (date(2022, 3, 12), date(2022, 4, 9), "complete"),  # another wanted drawing
    (date(2017, 6, 10), date(2017, 6, 7), "complete"),  # the drawing before, already stored
    (date(2021, 4, 28), NEWEST, "complete"),  # the newest drawing
    (date(2014, 6, 28), date(2014, 6, 25), "reporting"),  # not even complete
    (date(2022, 11, 7), date(2022, 11, 5), "processing"),
    (date(2022, 4, 9), NEWER_DRAWS[1].draw_date, "complete"),  # a newer wanted one
]:
    payload = musl_payload(answered, ["14", "20", "31", "47", "09"], "05", "2", statusCode=status)
    CASES[f"musl-misdated-{requested}-as-{answered}"] = Case(
        "musl-misdated", f"answered the drawing of {answered} for DrawDate {requested}", (requested, payload)
    )


# -- running a case ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_proxy_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_template(tmp_path_factory.mktemp("seeded"))


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MuslServer, NyServer]]:
    """One MUSL and one NY server for the module, reset by every case (a start and stop per case
    would cost more than the update)."""
    with MuslServer() as musl, NyServer() as ny:
        yield musl, ny


def _csv_row(draw: Draw) -> str:
    numbers = " ".join(f"{n:02d}" for n in draw.numbers())
    return f"{draw.draw_date:%m/%d/%Y},{numbers},{'' if draw.multiplier is None else draw.multiplier}"


def outcomes(report: UpdateReport, source: str) -> list[str]:
    return [a.outcome for a in report.attempts if a.source == source]


def assert_rejected(report: UpdateReport, source: str, expect: str) -> None:
    reasons = [r.reason for r in report.rejected if r.source == source]
    assert any(expect in reason for reason in reasons), (expect, reasons)


def run_case(case: Case, musl: MuslServer, ny: NyServer, store: Store, tmp_path: Path) -> UpdateReport:
    """Serve the fault, run one update, and check what the report says of it."""
    musl.reset([JUNE_29])  # "latest" is a drawing the store already has
    ny.reset()
    # The last source: a one-drawing export (the packaged one answers the same nothing, slower).
    bundled = BundledSource(tmp_path / "last.csv")
    bundled.path.write_text(CSV_HEADER + _csv_row(JUNE_29) + "\n", encoding="utf-8")
    if case.kind == "ny-record":
        ny.reset(NEWER_DRAWS[:2])  # valid records of the same batch
        ny.ignore_where = True  # every query meets the bad record, whatever its date
        ny.add_records([case.value])
        report = update_draws(store, musl=None, ny=ny_source(ny), now=NOW, bundled=bundled)
        assert_rejected(report, "ny", case.expect)
    elif case.kind == "ny-csv":
        rows = [_csv_row(d) for d in MISSING_DRAWS]  # six wanted drawings, valid, in the same file
        path = tmp_path / "export.csv"
        path.write_text(CSV_HEADER + "\n".join([*rows, case.value]) + "\n", encoding="utf-8")
        report = update_draws(store, musl=None, ny=None, offline=True, now=NOW, bundled=BundledSource(path))
        assert_rejected(report, "bundled", case.expect)
    elif case.kind == "ny-body":
        ny.reset(NEWER_DRAWS)
        ny.gzip = case.gzip
        ny.inject(NY_PATH, case.value())
        report = update_draws(store, musl=None, ny=ny_source(ny, max_bytes=case.max_bytes), now=NOW, bundled=bundled)
        said = outcomes(report, "ny")
        assert said and all(o.startswith("failed: ") and case.expect in o for o in said), said
        assert outcomes(report, "bundled"), "the bundled snapshot was not asked"
    elif case.kind == "musl-body":
        musl.reset(NEWER_DRAWS)
        musl.gzip = case.gzip
        musl.inject(MUSL_PATH, case.value())
        report = update_draws(
            store, musl=musl_source(musl, max_bytes=case.max_bytes), ny=ny_source(ny), now=NOW, bundled=bundled
        )
        (said,) = outcomes(report, "musl")  # a failed source is not asked again
        assert said.startswith("failed: ") and case.expect in said and said.endswith("; falling back"), said
        assert ny.requests_to(NY_PATH), "NY Open Data was not asked"
    elif case.kind == "musl-drawing":
        musl.add_payload(case.value, served_for=NEWEST)
        report = update_draws(store, musl=musl_source(musl), ny=ny_source(ny), now=NOW, bundled=bundled)
        assert_rejected(report, "musl", case.expect)
        assert ny.requests_to(NY_PATH), "NY Open Data was not asked"
    else:  # musl-misdated
        requested, payload = case.value
        musl.add_payload(payload, served_for=requested)
        report = update_draws(store, musl=musl_source(musl), ny=ny_source(ny), now=NOW, bundled=bundled)
        assert [(m.requested, m.answered) for m in report.misdated] == [
            (requested, date.fromisoformat(payload["drawDate"]))
        ]
        assert any(case.expect in o for o in outcomes(report, "musl"))
        wheres = " ".join(r.params["$where"] for r in ny.requests_to(NY_PATH))
        assert f"'{requested.isoformat()}T00:00:00.000'" in wheres, "NY Open Data was not asked for the date"
    return report


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.faults(c.kind)) for n, c in CASES.items()])
def test_a_fault_is_reported_and_changes_no_stored_draw(
    name: str, servers: tuple[MuslServer, NyServer], template: Path, tmp_path: Path
) -> None:
    case = CASES[name]
    store = copy_store(template, tmp_path)
    before = draws_checksum(store)

    report = run_case(case, *servers, store, tmp_path)

    assert draws_checksum(store) == before
    assert case.expect in report.as_text()
    assert recorded_report(store, report.update_id)["rejected"] == [asdict(r) for r in report.rejected]


def test_the_corpus_is_large_and_mixed() -> None:
    kinds = {case.kind for case in CASES.values()}
    assert len(CASES) >= 80
    assert kinds == {"ny-record", "ny-csv", "ny-body", "musl-drawing", "musl-body", "musl-misdated"}
