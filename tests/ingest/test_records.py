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
    return json.dumps({
        "drawId": 1, "game": {"code": "powerball", "name": "Powerball"}, "statusCode": status,
        "drawDate": draw_date, "drawDateUtc": f"{draw_date}T02:59:00Z", "numbers": numbers,
        "previousDrawing": {"drawId": 0, "drawDate": "2024-06-29", "drawDateUtc": "2024-06-30T02:59:00Z"},
        "nextDrawing": {"drawId": 2, "drawDate": "2024-07-03", "drawDateUtc": "2024-07-04T02:59:00Z"},
    })


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
    body = json.dumps([
        {"draw_date": "2024-07-01T00:00:00.000", "winning_numbers": "01 06 40 51 67 02", "multiplier": "2"},
        {"draw_date": "2024-07-03T00:00:00.000", "winning_numbers": "11 16 20 31 47 12"},
    ])
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
