import json
from datetime import UTC, date, datetime

import pytest

from shiol_lib.domain.draws import Draw, draws_to_frame
from shiol_lib.ingest.records import (
    merge_batches,
    parse_musl_json,
    parse_ny_csv,
    parse_ny_json,
    validate_draw,
)

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
HEADER = "Draw Date,Winning Numbers,Multiplier\n"


def musl_body(draw_date="2024-07-01", whites=("40", "06", "67", "01", "51"), pb="02", play="2", status="complete"):
    numbers = [
        {"itemCode": f"white-ball-{i + 1}", "ruleCode": "white-balls", "value": v, "orderDrawn": i + 1}
        for i, v in enumerate(whites)
    ]
    numbers.append({"itemCode": "powerball", "ruleCode": "powerball", "value": pb, "orderDrawn": 6})
    if play is not None:
        numbers.append({"itemCode": "power-play", "ruleCode": "multiplier", "value": play, "orderDrawn": 7})
    return json.dumps(
        {
            "drawId": 1,
            "game": {"code": "powerball", "name": "Powerball"},
            "statusCode": status,
            "drawDate": draw_date,
            "drawDateUtc": f"{draw_date}T02:59:00Z",
            "numbers": numbers,
            "previousDrawing": {"drawId": 0, "drawDate": "2024-06-29", "drawDateUtc": "2024-06-30T02:59:00Z"},
            "nextDrawing": {"drawId": 2, "drawDate": "2024-07-03", "drawDateUtc": "2024-07-04T02:59:00Z"},
        }
    )


def test_bundled_csv_parses_to_1647_sorted_draws(bundled_draws):
    assert len(bundled_draws) == 1647
    by_date = {d.draw_date: d for d in bundled_draws}
    assert by_date[date(2018, 1, 6)] == Draw(date(2018, 1, 6), (12, 29, 30, 33, 61), 26, 3)
    assert by_date[date(2012, 1, 18)].multiplier is None  # the blank-multiplier period
    assert all(list(d.whites) == sorted(d.whites) for d in bundled_draws)


def test_frame_layout(bundled_draws):
    frame = draws_to_frame(bundled_draws)
    assert list(frame.columns) == ["draw_date", "n1", "n2", "n3", "n4", "n5", "pb", "multiplier"]
    assert str(frame["draw_date"].dtype) == "datetime64[ns]" and str(frame["multiplier"].dtype) == "Int64"
    assert frame["draw_date"].is_monotonic_increasing
    assert frame.iloc[0].tolist()[1:7] == [17, 22, 36, 37, 52, 24]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2024-06-29,01 02 03 04 05 06,2", "unknown format"),
        ("06/31/2024,01 02 03 04 05 06,2", "not a real date"),
        ("07/02/2024,01 02 03 04 05 06,2", "not a scheduled draw day"),
        ("12/30/2026,01 02 03 04 05 06,2", "in the future"),
        ("06/29/2024,01 02 03 04 70 06,2", "outside 1-69"),
        ("06/29/2024,01 02 03 04 05 27,2", "Powerball 27 outside 1-26"),
        ("06/29/2024,01 02 03 04 04 06,2", "not distinct"),
        ("06/29/2024,01 02 03 04 05,2", "do not hold six numbers"),
        ("06/29/2024,01 02 03 04 05 06,7", "multiplier 7"),
        ("06/29/2024,01 02 03 04 05 06,0", "multiplier 0"),
        ("06/29/2024,01 02 xx 04 05 06,2", "not a whole number"),
        ("06/29/2024", "wrong number of fields"),
        ("01/07/2006,01 02 03 04 05 06,2", "no known Powerball matrix"),
    ],
)
def test_csv_rows_rejected_with_reason(row, reason):
    batch = parse_ny_csv(HEADER + row + "\n", source="test", now=NOW)
    assert batch.draws == []
    assert len(batch.rejections) == 1
    rejection = batch.rejections[0]
    assert rejection.source == "test" and reason in rejection.reason
    assert row.split(",")[0] in rejection.record


def test_matrix_is_tagged_by_date_not_by_values():
    # 65 is valid from 2015-10-07, not on 2015-10-03; Powerball 36 valid in 2011, not from 2012-01-18.
    assert parse_ny_csv(HEADER + "10/07/2015,01 02 03 04 65 06,2\n", source="t", now=NOW).ok
    assert not parse_ny_csv(HEADER + "10/03/2015,01 02 03 04 65 06,2\n", source="t", now=NOW).ok
    assert parse_ny_csv(HEADER + "01/14/2012,01 02 03 04 05 36,2\n", source="t", now=NOW).ok
    assert not parse_ny_csv(HEADER + "01/18/2012,01 02 03 04 05 36,\n", source="t", now=NOW).ok


def test_today_before_the_drawing_is_future_and_after_is_not():
    before = datetime(2024, 7, 2, 2, 58, tzinfo=UTC)  # 22:58 ET on 2024-07-01
    after = datetime(2024, 7, 2, 3, 0, tzinfo=UTC)  # 23:00 ET on 2024-07-01
    with pytest.raises(ValueError, match="future"):
        validate_draw(date(2024, 7, 1), [1, 2, 3, 4, 5], 6, None, now=before)
    assert validate_draw(date(2024, 7, 1), [5, 4, 3, 2, 1], 6, None, now=after).whites == (1, 2, 3, 4, 5)


def test_csv_header_without_required_columns_rejects_the_batch():
    batch = parse_ny_csv("Date,Numbers\n06/29/2024,01 02 03 04 05 06\n", source="t", now=NOW)
    assert not batch.ok and "lacks the columns" in batch.rejections[0].reason


def test_same_date_twice_with_different_values_is_rejected():
    text = HEADER + "06/29/2024,01 02 03 04 05 06,2\n06/29/2024,01 02 03 04 05 07,2\n06/29/2024,01 02 03 04 05 06,2\n"
    batch = parse_ny_csv(text, source="t", now=NOW)
    assert len(batch.draws) == 1 and len(batch.rejections) == 1
    assert "appears twice" in batch.rejections[0].reason


def test_ny_json_records_and_missing_multiplier():
    body = json.dumps(
        [
            {"draw_date": "2024-07-01T00:00:00.000", "winning_numbers": "01 06 40 51 67 02", "multiplier": "2"},
            {"draw_date": "2024-07-03T00:00:00.000", "winning_numbers": "11 16 20 31 47 12"},
        ]
    )
    batch = parse_ny_json(body, source="ny", now=NOW)
    assert batch.ok
    assert batch.draws == [
        Draw(date(2024, 7, 1), (1, 6, 40, 51, 67), 2, 2),
        Draw(date(2024, 7, 3), (11, 16, 20, 31, 47), 12, None),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<html><body>502 Bad Gateway</body></html>", "HTML page"),
        ('[{"draw_date": "2024-07-01T00:00:00.000", "winning_numbers": "01 06', "truncated JSON"),
        ('{"error": "nope"}', "not a JSON list"),
        ('[{"draw_date": "2024-07-01T00:00:00.000"}]', "no 'winning_numbers'"),
        ('[{"draw_date": "2024-07-01T12:00:00.000", "winning_numbers": "01 06 40 51 67 02"}]', "unknown format"),
    ],
)
def test_ny_json_bad_bodies(body, reason):
    batch = parse_ny_json(body, source="ny", now=NOW)
    assert batch.draws == [] and reason in batch.rejections[0].reason


def test_musl_complete_drawing_sorted_with_multiplier():
    batch = parse_musl_json(musl_body(), source="musl", now=NOW)
    assert batch.ok and batch.draws == [Draw(date(2024, 7, 1), (1, 6, 40, 51, 67), 2, 2)]


def test_musl_reporting_is_pending_not_a_draw():
    batch = parse_musl_json(musl_body(status="reporting"), source="musl", now=NOW)
    assert batch.ok and batch.draws == []
    assert [(p.draw_date, p.status) for p in batch.pending] == [(date(2024, 7, 1), "reporting")]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"status": "cancelled"}, "statusCode 'cancelled'"),
        ({"whites": ("01", "02", "03", "04")}, "expected 5 white balls"),
        ({"pb": "27"}, "Powerball 27"),
        ({"play": "9"}, "multiplier 9"),
        ({"draw_date": "2024-07-02"}, "not a scheduled draw day"),
    ],
)
def test_musl_bad_drawings(kwargs, reason):
    batch = parse_musl_json(musl_body(**kwargs), source="musl", now=NOW)
    assert batch.draws == [] and reason in batch.rejections[0].reason


def test_merge_batches_rejects_disagreeing_answers():
    first = parse_musl_json(musl_body(), source="musl", now=NOW)
    second = parse_musl_json(musl_body(pb="03"), source="musl", now=NOW)
    merged = merge_batches("musl", [first, first, second])
    assert len(merged.draws) == 1 and len(merged.rejections) == 1


# -- hostile records and bodies (issue 10) ---------------------------------------------------------


def ny_body(**fields):
    record = {"draw_date": "2024-07-01T00:00:00.000", "winning_numbers": "01 06 40 51 67 02", "multiplier": "2"}
    record.update(fields)
    return json.dumps([{k: v for k, v in record.items() if v is not ...}])


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"winning_numbers": "01 06 \u00b2 51 67 02"}, "number '²' is not a whole number (ASCII digits 0-9 only)"),
        ({"winning_numbers": "01 06 \uff14\uff10 51 67 02"}, "number '４０' is not a whole number"),
        ({"winning_numbers": "01 06 \u0664\u0660 51 67 02"}, "is not a whole number (ASCII digits 0-9 only)"),
        ({"multiplier": "\u00b2"}, "multiplier '²' is not a whole number"),
        ({"draw_date": "\uff12\uff10\uff12\uff14-07-01T00:00:00.000"}, "is in an unknown format"),
        ({"draw_date": "2024-07-0\u0661"}, "is in an unknown format"),
        ({"winning_numbers": "01 06 -40 51 67 02"}, "number '-40' is not a whole number"),
        ({"winning_numbers": "01 06 +40 51 67 02"}, "number '+40' is not a whole number"),
        ({"winning_numbers": "01 06 40.0 51 67 02"}, "number '40.0' is not a whole number"),
        ({"winning_numbers": "01 06 " + "4" * 40 + " 51 67 02"}, "has too many digits"),
        ({"multiplier": 2.0}, "multiplier 2.0 is not a whole number"),
        ({"multiplier": True}, "multiplier True is not a number"),
        ({"multiplier": -2}, "multiplier -2 is negative"),
        ({"multiplier": {"value": "2"}}, "multiplier {'value': '2'} is not a whole number"),
        ({"winning_numbers": ["01", "06", "40", "51", "67", "02"]}, "are not a string"),
        ({"draw_date": None}, "draw date None is not a string"),
        ({"draw_date": "12/29/9999"}, "is in an unknown format"),
        ({"draw_date": "9999-12-29"}, "9999-12-29 is in the future"),
    ],
)
def test_ny_records_accept_ascii_digits_only(fields, reason):
    batch = parse_ny_json(ny_body(**fields), source="ny", now=NOW)

    assert batch.draws == [] and batch.failure is None
    (rejection,) = batch.rejections
    assert rejection.source == "ny" and reason in rejection.reason


def test_ny_null_record_is_rejected_and_the_records_beside_it_kept_in_the_batch():
    body = json.dumps([None, {"draw_date": "2024-07-01T00:00:00.000", "winning_numbers": "01 06 40 51 67 02"}])

    batch = parse_ny_json(body, source="ny", now=NOW)

    assert [d.draw_date for d in batch.draws] == [date(2024, 7, 1)]
    assert [(r.record, r.reason) for r in batch.rejections] == [("null", "record is JSON null, not a JSON object")]
    assert batch.failure is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("null", "response body is JSON null, not a list of records"),
        ("", "response body is empty"),
        ("[" * 200_000, "nested too deeply"),
        ("[" + "1" * 5000 + "]", "Exceeds the limit (4300 digits)"),
        ('"2024-07-01"', "not a JSON list of records (a JSON str)"),
    ],
)
def test_ny_unusable_bodies_fail_the_batch(body, reason):
    batch = parse_ny_json(body, source="ny", now=NOW)

    assert batch.draws == [] and not batch.ok
    assert reason in batch.failure
    (rejection,) = batch.rejections
    assert rejection.reason == batch.failure and len(rejection.record) <= 160


def test_csv_row_with_an_extra_field_is_rejected_not_raised():
    batch = parse_ny_csv(HEADER + "06/29/2024,01 02 03 04 05 06,2,extra\n", source="t", now=NOW)

    (rejection,) = batch.rejections
    assert "wrong number of fields" in rejection.reason and "06/29/2024" in rejection.record


def test_csv_field_over_the_csv_limit_fails_the_batch():
    batch = parse_ny_csv(HEADER + "06/29/2024," + "1" * 200_000 + ",2\n", source="t", now=NOW)

    assert batch.draws == [] and "CSV is malformed at line" in batch.failure


@pytest.mark.parametrize(
    ("game", "reason"),
    [
        ({"code": "megamillions", "name": "Mega Millions"}, "game code 'megamillions' is not powerball"),
        ({"name": "Powerball"}, "game has no code"),
        ({"code": None}, "game has no code"),
        ({"code": 5}, "game code 5 is not powerball"),
        ("powerball", "game 'powerball' is not an object with a code"),
        (None, "drawing names no game"),
        (..., "drawing names no game"),
    ],
)
def test_musl_answer_must_be_a_powerball_drawing(game, reason):
    payload = json.loads(musl_body())
    if game is ...:
        del payload["game"]
    else:
        payload["game"] = game

    batch = parse_musl_json(json.dumps(payload), source="musl", now=NOW)

    assert batch.draws == [] and batch.pending == []
    (rejection,) = batch.rejections
    assert rejection.reason.startswith(reason)


def test_musl_game_is_checked_before_a_pending_status():
    payload = json.loads(musl_body(status="reporting"))
    payload["game"] = {"code": "megamillions"}

    batch = parse_musl_json(json.dumps(payload), source="musl", now=NOW)

    assert batch.pending == [] and "megamillions" in batch.rejections[0].reason


@pytest.mark.parametrize("status", ["complete", "reporting"])
def test_musl_answer_for_another_date_than_requested_is_misdated(status):
    batch = parse_musl_json(
        musl_body(draw_date="2024-07-03", status=status), source="musl", now=NOW, requested=date(2024, 7, 1)
    )

    assert batch.draws == [] and batch.pending == [] and batch.rejections == []
    (wrong,) = batch.misdated
    assert (wrong.requested, wrong.answered) == (date(2024, 7, 1), date(2024, 7, 3))
    assert "2024-07-01" in wrong.as_text() and "2024-07-03" in wrong.as_text()


def test_musl_answer_for_the_requested_date_is_kept():
    batch = parse_musl_json(musl_body(), source="musl", now=NOW, requested=date(2024, 7, 1))

    assert batch.ok and batch.misdated == [] and [d.draw_date for d in batch.draws] == [date(2024, 7, 1)]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"whites": ("01", "06", "\u00b2", "51", "67")}, "white ball '²' is not a whole number"),
        ({"pb": "\uff10\uff12"}, "Powerball '０２' is not a whole number"),
        ({"play": "\u00b2"}, "multiplier '²' is not a whole number"),
        ({"draw_date": "2024-07-0\u0661"}, "is in an unknown format"),
        ({"status": None}, "statusCode None is not one of"),
        ({"status": "Complete"}, "statusCode 'Complete' is not one of"),
    ],
)
def test_musl_unicode_digits_and_odd_statuses_are_rejected(kwargs, reason):
    batch = parse_musl_json(musl_body(**kwargs), source="musl", now=NOW)

    assert batch.draws == [] and reason in batch.rejections[0].reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("null", "response body is JSON null, not a drawing object"),
        ("[]", "response is not one JSON drawing object (a JSON list)"),
        ('{"drawDate": "2024-07-01", "numbers": [', "malformed or truncated JSON"),
        ('{"a":' * 100_000, "nested too deeply"),
    ],
)
def test_musl_unusable_bodies_fail_the_batch(body, reason):
    batch = parse_musl_json(body, source="musl", now=NOW)

    assert batch.draws == [] and reason in batch.failure and batch.rejections[0].reason == batch.failure


def test_an_unexpected_error_in_a_record_is_a_rejection(monkeypatch):
    from shiol_lib.ingest import records

    def broken(raw):
        raise KeyError("surprise")

    monkeypatch.setattr(records, "parse_six", broken)
    batch = parse_ny_json(ny_body(), source="ny", now=NOW)

    assert batch.draws == [] and batch.rejections[0].reason == "record could not be read (KeyError: 'surprise')"


def test_an_unexpected_error_while_parsing_a_body_fails_the_batch(monkeypatch):
    from shiol_lib.ingest import records

    def broken(text):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(records, "decode_json", broken)
    for parse in (parse_ny_json, parse_musl_json):
        batch = parse(ny_body(), source="x", now=NOW)
        assert batch.failure == "response could not be parsed (ZeroDivisionError: division by zero)"
        assert not batch.ok
