"""HttpClient, MuslSource and NySource against real local HTTP servers (tests/fakesources.py)."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, date, datetime

import pytest
from fakesources import (
    MISSING_DATES,
    MISSING_DRAWS,
    MUSL_API_KEY,
    MUSL_PATH,
    NEWER_DRAWS,
    NY_PATH,
    Fault,
    MuslServer,
    NyServer,
    cut_off,
    draw_order,
    history_draws,
    html_page,
    http_error,
    huge_body,
    musl_drawing,
    ny_record,
    raw_body,
    slow,
    trickle,
    truncated_json,
)

import shiol_lib.ingest.sources as sources
from shiol_lib.domain.draws import Draw
from shiol_lib.errors import FetchError, ResponseTooLargeError
from shiol_lib.ingest.records import Pending
from shiol_lib.ingest.sources import HttpClient, MuslSource, NySource

NOW = datetime(2024, 7, 8, 12, 0, tzinfo=UTC)  # after the NEWER_DRAWS, before the next drawing
TIMEOUT_S = 0.5
RETRIES = 2
BACKOFF_S = 0.1
SERVER_DELAY_S = 30.0  # how long the slow and trickling servers take to answer in full
# A client that waited for such an answer would take at least SERVER_DELAY_S: finishing sooner proves it
# gave up by its own deadline. (A bound on the delay, never on this machine's speed.)


@pytest.fixture(autouse=True)
def _no_proxy_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


def make_client(**overrides: float) -> HttpClient:
    options = {"timeout_s": TIMEOUT_S, "retries": RETRIES, "backoff_s": BACKOFF_S, "max_retry_after_s": 2.0}
    options.update(overrides)
    return HttpClient(**options)


def musl_for(server: MuslServer, *, key: str | None = MUSL_API_KEY, **client: float) -> MuslSource:
    return MuslSource(server.url, key, make_client(**client))


def ny_for(server: NyServer, **client: float) -> NySource:
    return NySource(server.url, make_client(**client))


def gaps(requests: list) -> list[float]:
    return [b.at - a.at for a, b in zip(requests, requests[1:])]


# -- HttpClient: retries, Retry-After, timeouts ---------------------------------------------------


def test_500_is_retried_with_exponential_backoff_then_succeeds(musl_server: MuslServer) -> None:
    musl_server.inject(MUSL_PATH, http_error(500, times=2))

    batch = musl_for(musl_server).fetch(None, now=NOW)

    assert [d.draw_date for d in batch.draws] == [date(2024, 6, 29)]
    asked = musl_server.requests_to(MUSL_PATH)
    assert len(asked) == 3
    first, second = gaps(asked)
    assert first >= BACKOFF_S  # backoff_s * 2**0
    assert second >= 2 * BACKOFF_S  # backoff_s * 2**1


def test_503_gives_up_after_the_configured_retries(musl_server: MuslServer) -> None:
    musl_server.inject(MUSL_PATH, http_error(503))

    with pytest.raises(FetchError) as caught:
        musl_for(musl_server).fetch(None, now=NOW)

    assert caught.value.status == 503
    assert "HTTP 503" in str(caught.value)
    assert len(musl_server.requests_to(MUSL_PATH)) == RETRIES + 1


def test_429_retry_after_is_honoured(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, http_error(429, retry_after=1, times=1))

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 24), now=NOW)

    assert [d.draw_date for d in batch.draws] == [date(2024, 6, 26), date(2024, 6, 29)]
    asked = ny_server.requests_to(NY_PATH)
    assert len(asked) == 2
    assert gaps(asked)[0] >= 1.0  # not the 0.1 s backoff: the server asked for 1 s


def test_retry_after_above_the_cap_gives_up_at_once(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, http_error(429, retry_after=120))
    started = time.monotonic()

    with pytest.raises(FetchError) as caught:
        ny_for(ny_server, max_retry_after_s=2.0).fetch_after(date(2024, 6, 24), now=NOW)

    assert time.monotonic() - started < 120  # it did not wait the 120 s asked for
    assert caught.value.status == 429
    assert "Retry-After 120 s exceeds the 2 s cap" in str(caught.value)
    assert len(ny_server.requests_to(NY_PATH)) == 1


def test_slow_answer_past_the_timeout_fails_without_hanging(musl_server: MuslServer) -> None:
    musl_server.inject(MUSL_PATH, slow(SERVER_DELAY_S))
    started = time.monotonic()

    with pytest.raises(FetchError) as caught:
        musl_for(musl_server).fetch(None, now=NOW)

    elapsed = time.monotonic() - started
    assert elapsed >= TIMEOUT_S * (RETRIES + 1)  # it did wait out each attempt
    assert elapsed < SERVER_DELAY_S  # gave up on each attempt, never waited for the answer
    assert caught.value.status is None
    assert f"no answer within {TIMEOUT_S:g} s" in str(caught.value)
    assert len(musl_server.requests_to(MUSL_PATH)) == RETRIES + 1


def test_slow_first_answer_then_success_is_retried(musl_server: MuslServer) -> None:
    musl_server.inject(MUSL_PATH, slow(30, times=1))

    batch = musl_for(musl_server).fetch(date(2024, 6, 26), now=NOW)

    assert batch.draws == [Draw(date(2024, 6, 26), (4, 9, 36, 47, 56), 7, 5)]
    assert len(musl_server.requests_to(MUSL_PATH)) == 2


def test_trickling_body_past_the_deadline_fails_without_hanging(ny_server: NyServer) -> None:
    # Each byte arrives well within the socket timeout, but the whole body would take far longer.
    ny_server.inject(NY_PATH, trickle(0.1))
    started = time.monotonic()

    with pytest.raises(FetchError) as caught:
        ny_for(ny_server, retries=0).fetch_after(date(2024, 6, 24), now=NOW)

    assert time.monotonic() - started < SERVER_DELAY_S  # the body alone takes longer than that
    assert "not complete within" in str(caught.value)


def test_body_cut_off_is_retried_then_succeeds(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, cut_off(40, times=1))

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 24), now=NOW)

    assert [d.draw_date for d in batch.draws] == [date(2024, 6, 26), date(2024, 6, 29)]
    assert len(ny_server.requests_to(NY_PATH)) == 2


def test_body_always_cut_off_is_a_fetch_error(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, cut_off(40))

    with pytest.raises(FetchError) as caught:
        ny_for(ny_server).fetch_after(date(2024, 6, 24), now=NOW)

    assert "response broken off" in str(caught.value)
    assert len(ny_server.requests_to(NY_PATH)) == RETRIES + 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(musl_server: MuslServer, status: int) -> None:
    musl_server.inject(MUSL_PATH, http_error(status))

    with pytest.raises(FetchError) as caught:
        musl_for(musl_server).fetch(None, now=NOW)

    assert caught.value.status == status
    assert len(musl_server.requests_to(MUSL_PATH)) == 1


def test_connection_refused_is_a_fetch_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = MuslSource(f"http://127.0.0.1:{port}", MUSL_API_KEY, make_client(backoff_s=0.01))

    with pytest.raises(FetchError) as caught:
        source.fetch(None, now=NOW)

    assert "connection failed" in str(caught.value)


# -- MUSL game service v3 ---------------------------------------------------------------------------


def test_musl_sends_key_game_and_date(musl_server: MuslServer) -> None:
    batch = musl_for(musl_server).fetch(date(2024, 6, 29), now=NOW)

    assert batch.draws == [Draw(date(2024, 6, 29), (26, 51, 54, 61, 69), 25, 3)]
    (asked,) = musl_server.requests_to(MUSL_PATH)
    assert asked.params == {"GameCode": "powerball", "DrawDate": "2024-06-29"}
    assert asked.headers["x-api-key"] == MUSL_API_KEY


def test_musl_wrong_key_is_401_and_not_retried(musl_server: MuslServer) -> None:
    with pytest.raises(FetchError) as caught:
        musl_for(musl_server, key="wrong").fetch(None, now=NOW)

    assert caught.value.status == 401
    assert len(musl_server.requests_to(MUSL_PATH)) == 1


def test_musl_unknown_date_is_404_and_not_retried(musl_server: MuslServer) -> None:
    with pytest.raises(FetchError) as caught:
        musl_for(musl_server).fetch(date(2024, 7, 3), now=NOW)

    assert caught.value.status == 404
    assert len(musl_server.requests_to(MUSL_PATH)) == 1


def test_musl_white_balls_in_draw_order_come_back_sorted(musl_server: MuslServer) -> None:
    newest = NEWER_DRAWS[-1]
    musl_server.add_draws([newest])
    assert draw_order(newest) != sorted(newest.whites)  # the server really answers unsorted

    batch = musl_for(musl_server).fetch(None, now=NOW)

    assert batch.ok
    assert batch.draws == [Draw(date(2024, 7, 6), (7, 19, 28, 44, 65), 21, None)]


def test_musl_power_play_becomes_the_multiplier(musl_server: MuslServer) -> None:
    musl_server.add_payload(musl_drawing(date(2024, 7, 1), [67, 1, 51, 6, 40], 2, 10))

    batch = musl_for(musl_server).fetch(date(2024, 7, 1), now=NOW)

    assert batch.draws == [Draw(date(2024, 7, 1), (1, 6, 40, 51, 67), 2, 10)]


@pytest.mark.parametrize("status", ["reporting", "processing"])
def test_musl_drawing_not_complete_is_pending_not_a_draw(musl_server: MuslServer, status: str) -> None:
    musl_server.add_payload(musl_drawing(date(2024, 7, 1), [67, 1], status=status))

    batch = musl_for(musl_server).fetch(None, now=NOW)

    assert batch.draws == []
    assert batch.rejections == []
    assert batch.pending == [Pending("musl", date(2024, 7, 1), status)]


def test_musl_out_of_matrix_drawing_is_rejected(musl_server: MuslServer) -> None:
    musl_server.add_payload(musl_drawing(date(2024, 7, 1), [67, 1, 70, 6, 40], 2, 2))

    batch = musl_for(musl_server).fetch(None, now=NOW)

    assert batch.draws == []
    (rejection,) = batch.rejections
    assert rejection.source == "musl"
    assert "white ball(s) [70] outside 1-69" in rejection.reason


def test_musl_html_page_with_status_200_is_rejected(musl_server: MuslServer) -> None:
    musl_server.inject(MUSL_PATH, html_page())

    batch = musl_for(musl_server).fetch(None, now=NOW)

    assert batch.draws == []
    (rejection,) = batch.rejections
    assert rejection.reason == "response body is an HTML page, not JSON"
    assert rejection.record.startswith("<!DOCTYPE html>")


# -- NY Open Data (Socrata) -----------------------------------------------------------------------


def test_ny_follows_offset_pages(ny_server: NyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "NY_PAGE_SIZE", 2)
    ny_server.add_draws(NEWER_DRAWS)

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 19), now=NOW)

    # 06-22, 06-24, 06-26, 06-29 (bundled) + the three newer: 7 records, 4 pages of 2.
    assert [d.draw_date for d in batch.draws] == [
        date(2024, 6, 22),
        date(2024, 6, 24),
        date(2024, 6, 26),
        date(2024, 6, 29),
        date(2024, 7, 1),
        date(2024, 7, 3),
        date(2024, 7, 6),
    ]
    assert batch.draws[-1] == NEWER_DRAWS[-1]  # the record without a multiplier
    asked = ny_server.requests_to(NY_PATH)
    assert [r.params["$offset"] for r in asked] == ["0", "2", "4", "6"]
    assert {r.params["$limit"] for r in asked} == {"2"}
    assert {r.params["$where"] for r in asked} == {"draw_date > '2024-06-19T00:00:00.000'"}
    assert {r.params["$order"] for r in asked} == {"draw_date ASC"}


def test_ny_exact_multiple_of_the_page_size_stops_on_the_empty_page(
    ny_server: NyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "NY_PAGE_SIZE", 2)

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 19), now=NOW)

    assert len(batch.draws) == 4
    assert [r.params["$offset"] for r in ny_server.requests_to(NY_PATH)] == ["0", "2", "4"]


def test_ny_server_ignoring_offset_does_not_loop_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "NY_PAGE_SIZE", 2)
    with NyServer(history_draws(), ignore_offset=True) as server:
        batch = ny_for(server).fetch_after(date(2024, 6, 19), now=NOW)
        asked = server.requests_to(NY_PATH)

    assert len(asked) == 2  # the second page repeated the first: stop there
    assert [d.draw_date for d in batch.draws] == [date(2024, 6, 22), date(2024, 6, 24)]


def test_ny_fetches_given_dates_with_an_in_clause(ny_server: NyServer) -> None:
    ny_server.add_draws(MISSING_DRAWS)

    batch = ny_for(ny_server).fetch_dates(reversed(MISSING_DATES), now=NOW)

    assert batch.ok
    assert batch.draws == list(MISSING_DRAWS)
    (asked,) = ny_server.requests_to(NY_PATH)
    listed = ", ".join(f"'{d.isoformat()}T00:00:00.000'" for d in MISSING_DATES)
    assert asked.params["$where"] == f"draw_date in ({listed})"


def test_ny_server_ignoring_where_is_filtered_client_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "NY_PAGE_SIZE", 500)
    with NyServer([*history_draws(), *MISSING_DRAWS], ignore_where=True) as server:
        batch = ny_for(server).fetch_dates(MISSING_DATES[:2], now=NOW)

    assert batch.draws == list(MISSING_DRAWS[:2])


def test_ny_missing_multiplier_is_none(ny_server: NyServer) -> None:
    record = ny_record(NEWER_DRAWS[-1])
    assert "multiplier" not in record
    ny_server.add_records([record])

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == [Draw(date(2024, 7, 6), (7, 19, 28, 44, 65), 21, None)]


def test_ny_truncated_json_is_rejected(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, truncated_json())

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == []
    (rejection,) = batch.rejections
    assert rejection.source == "ny"
    assert rejection.reason.startswith("response body is malformed or truncated JSON")


def test_ny_html_page_with_status_200_is_rejected(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, html_page())

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == []
    assert [r.reason for r in batch.rejections] == ["response body is an HTML page, not JSON"]


def test_ny_invalid_record_is_rejected_and_valid_ones_kept_in_the_batch(ny_server: NyServer) -> None:
    ny_server.add_draws(NEWER_DRAWS[:1])
    ny_server.add_records([{"draw_date": "2024-07-02T00:00:00.000", "winning_numbers": "01 02 03 04 05 06"}])

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == [NEWER_DRAWS[0]]  # the parser keeps it; the updater then writes nothing
    (rejection,) = batch.rejections
    assert rejection.reason == "2024-07-02 (Tuesday) is not a scheduled draw day"
    assert '"draw_date": "2024-07-02T00:00:00.000"' in rejection.record


@pytest.mark.parametrize(("gzip", "chunked"), [(True, False), (False, True), (True, True)])
def test_ny_gzip_and_chunked_answers_are_read_whole(
    ny_server: NyServer, monkeypatch: pytest.MonkeyPatch, gzip: bool, chunked: bool
) -> None:
    monkeypatch.setattr(sources, "NY_PAGE_SIZE", 500)
    ny_server.gzip, ny_server.chunked = gzip, chunked

    batch = ny_for(ny_server).fetch_after(date(2009, 1, 1), now=NOW)

    assert batch.ok
    assert batch.draws == history_draws()  # 1,647 records over 4 pages, each many chunks
    assert len(ny_server.requests_to(NY_PATH)) == 4


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": "07 19 28 44 65 27"},
            "Powerball 27 outside 1-26 of the 2015-69/26 matrix",
        ),
        (
            {"draw_date": "2014-06-28T00:00:00.000", "winning_numbers": "05 18 27 43 60 33"},
            "white ball(s) [60] outside 1-59 of the 2012-59/35 matrix",
        ),
        (
            {"draw_date": "2014-06-28T00:00:00.000", "winning_numbers": "05 18 27 43 58 36"},
            "Powerball 36 outside 1-35 of the 2012-59/35 matrix",
        ),
        (
            {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": "07 19 28 44 65 21", "multiplier": "7"},
            "multiplier 7 not in [2, 3, 4, 5, 10] or empty",
        ),
        (
            {"draw_date": "2024-07-06T00:00:00.000", "winning_numbers": "07 19 28 44 65"},
            "winning numbers '07 19 28 44 65' do not hold six numbers",
        ),
    ],
    ids=["powerball-current", "white-2014", "powerball-2014", "multiplier", "five-numbers"],
)
def test_ny_records_are_checked_against_the_matrix_of_their_date(
    ny_server: NyServer, record: dict[str, str], reason: str
) -> None:
    ny_server.add_records([record])

    batch = ny_for(ny_server).fetch_dates([date(2014, 6, 28), date(2024, 7, 6)], now=NOW)

    assert batch.draws == []
    assert [r.reason for r in batch.rejections] == [reason]


# -- response size cap (SHIOL_HTTP_MAX_BYTES) ---------------------------------------------------------


def test_a_body_over_the_cap_is_cut_off_while_streaming_and_not_retried(ny_server: NyServer) -> None:
    fault = huge_body(200_000_000, pattern=b"[")  # chunked: no length announced
    ny_server.inject(NY_PATH, fault)
    with pytest.raises(ResponseTooLargeError) as caught:
        ny_for(ny_server, max_bytes=100_000).fetch_after(date(2024, 6, 29), now=NOW)

    assert "response larger than the 100,000 byte limit (SHIOL_HTTP_MAX_BYTES)" in str(caught.value)
    assert caught.value.limit == 100_000
    assert len(ny_server.requests_to(NY_PATH)) == 1  # the same body would come again
    ny_server.stop()  # the handler has given up writing once it returns
    assert fault.sent < 50_000_000  # the 200 MB were never all sent, let alone read


def test_a_declared_length_over_the_cap_is_refused_before_reading(musl_server: MuslServer) -> None:
    musl_server.inject(MUSL_PATH, huge_body(50_000_000, declare_length=True))

    with pytest.raises(ResponseTooLargeError) as caught:
        musl_for(musl_server, max_bytes=1_000_000).fetch(None, now=NOW)

    assert "1,000,000 byte limit" in str(caught.value) and "Content-Length 50,000,000" in str(caught.value)


def test_a_gzip_body_inflating_past_the_cap_is_cut_off(ny_server: NyServer) -> None:
    ny_server.gzip = True
    ny_server.inject(NY_PATH, raw_body("[" + " " * 3_000_000 + "]"))  # ~3 KB on the wire

    with pytest.raises(ResponseTooLargeError) as caught:
        ny_for(ny_server, max_bytes=1_000_000).fetch_after(date(2024, 6, 29), now=NOW)

    assert "cut off after" in str(caught.value)


def test_a_body_of_exactly_the_cap_is_read(ny_server: NyServer) -> None:
    body = json.dumps([ny_record(NEWER_DRAWS[0])])
    ny_server.inject(NY_PATH, raw_body(body))

    batch = ny_for(ny_server, max_bytes=len(body)).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == [NEWER_DRAWS[0]]


def test_the_client_from_settings_takes_the_cap(tmp_path) -> None:
    from shiol_lib.settings import load_settings

    settings = load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_HTTP_MAX_BYTES": "1234"})

    assert HttpClient.from_settings(settings).max_bytes == 1234


# -- hostile headers and bodies -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u00b2", "\uff11", "Wed, 21 Oct 2015 07:28:00 -0000", "soon", "-1"])
def test_an_odd_retry_after_is_a_plain_backoff(musl_server: MuslServer, value: str) -> None:
    musl_server.inject(MUSL_PATH, http_error(503, retry_after=value, times=1))

    batch = musl_for(musl_server).fetch(None, now=NOW)

    assert [d.draw_date for d in batch.draws] == [date(2024, 6, 29)]
    assert len(musl_server.requests_to(MUSL_PATH)) == 2


def test_an_unknown_charset_is_read_as_utf8(ny_server: NyServer) -> None:
    body = json.dumps([ny_record(NEWER_DRAWS[0])])
    ny_server.inject(NY_PATH, Fault(body=body, content_type="application/json; charset=x-no-such-charset"))

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == [NEWER_DRAWS[0]]


def test_ny_null_body_is_a_failed_batch_not_zero_draws(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, raw_body("null"))

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.failure == "response body is JSON null, not a list of records"
    assert [r.reason for r in batch.rejections] == [batch.failure]


def test_ny_page_whose_first_record_is_null_is_read_not_dropped(ny_server: NyServer) -> None:
    ny_server.add_records([None])
    ny_server.add_draws(NEWER_DRAWS[:1])  # sorts first; the null record sorts last

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == [NEWER_DRAWS[0]]
    assert [r.reason for r in batch.rejections] == ["record is JSON null, not a JSON object"]


def test_ny_null_as_the_only_record_is_rejected(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, raw_body("[null]"))

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.draws == [] and [r.record for r in batch.rejections] == ["null"]


def test_ny_deeply_nested_body_is_a_failed_batch(ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, raw_body("[" * 200_000))

    batch = ny_for(ny_server).fetch_after(date(2024, 6, 29), now=NOW)

    assert batch.failure == "response body is JSON nested too deeply to read"


def test_musl_answer_about_another_drawing_is_misdated(musl_server: MuslServer) -> None:
    musl_server.add_payload(musl_drawing(date(2024, 7, 3), [12, 25, 33, 48, 60], 14, 3), served_for=date(2024, 7, 1))

    batch = musl_for(musl_server).fetch(date(2024, 7, 1), now=NOW)

    assert batch.draws == [] and batch.rejections == []
    assert [(m.requested, m.answered) for m in batch.misdated] == [(date(2024, 7, 1), date(2024, 7, 3))]


def test_musl_mega_millions_answer_is_rejected(musl_server: MuslServer) -> None:
    payload = musl_drawing(date(2024, 7, 1), [1, 6, 40, 51, 67], 2, 2)
    payload["game"] = {"code": "megamillions", "name": "Mega Millions"}
    musl_server.add_payload(payload)

    batch = musl_for(musl_server).fetch(date(2024, 7, 1), now=NOW)

    assert batch.draws == [] and [r.reason for r in batch.rejections] == ["game code 'megamillions' is not powerball"]
