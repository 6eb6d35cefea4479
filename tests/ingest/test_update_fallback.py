"""update_draws in-process against real local servers: failed bodies, oversize answers and misdated
MUSL answers fall back to the next source (the CLI-level tests are in test_update.py, marked slow)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from fakesources import (
    MISSING_DRAWS,
    MUSL_PATH,
    NEWER_DRAWS,
    NY_PATH,
    MuslServer,
    NyServer,
    http_error,
    huge_body,
    musl_drawing,
    raw_body,
)
from update_support import (
    NOW,
    copy_store,
    draws_checksum,
    musl_source,
    ny_source,
    seed_template,
    update_count,
)

from shiol_lib.ingest.sources import BundledSource
from shiol_lib.ingest.update import update_draws
from shiol_lib.store import Store


@pytest.fixture(autouse=True)
def _no_proxy_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_template(tmp_path_factory.mktemp("seeded"))


@pytest.fixture
def seeded(template: Path, tmp_path: Path) -> Store:
    return copy_store(template, tmp_path)


def sources_of(store: Store) -> dict[date, str]:
    with store.connect() as conn:
        return dict(conn.execute("SELECT draw_date, source FROM draws").fetchall())


def outcomes(report, source: str) -> list[str]:
    return [a.outcome for a in report.attempts if a.source == source]


def test_a_misdated_musl_answer_is_reported_and_the_date_asked_of_ny(
    seeded: Store, musl_server: MuslServer, ny_server: NyServer
) -> None:
    asked, answered = MISSING_DRAWS[0].draw_date, date(2014, 6, 25)  # both in the 2012-59/35 era
    musl_server.add_payload(musl_drawing(answered, [5, 18, 27, 43, 58], 33, 2), served_for=asked)
    ny_server.add_draws([MISSING_DRAWS[0]])

    report = update_draws(seeded, musl=musl_source(musl_server), ny=ny_source(ny_server), now=NOW)

    assert [(m.source, m.requested, m.answered) for m in report.misdated] == [("musl", asked, answered)]
    assert (
        "failed: answered the drawing of 2014-06-25 for DrawDate 2014-06-28; asking NY Open Data for 2014-06-28"
    ) in outcomes(report, "musl")
    assert (
        "wrong drawing answered: [musl] asked for DrawDate 2014-06-28, answered the drawing of 2014-06-25"
        in report.as_text()
    )
    assert report.as_dict()["misdated"] == [{"source": "musl", "requested": "2014-06-28", "answered": "2014-06-25"}]
    wheres = [r.params["$where"] for r in ny_server.requests_to(NY_PATH)]
    assert any("'2014-06-28T00:00:00.000'" in w for w in wheres)
    assert sources_of(seeded)[asked] == "ny" and asked in report.backfilled
    assert report.rejected == []


def test_a_mega_millions_answer_is_rejected_and_ny_asked(
    seeded: Store, musl_server: MuslServer, ny_server: NyServer
) -> None:
    payload = musl_drawing(date(2024, 7, 6), [44, 7, 65, 19, 28], 21, None)
    payload["game"] = {"code": "megamillions", "name": "Mega Millions"}
    musl_server.add_payload(payload)
    ny_server.add_draws(NEWER_DRAWS)

    report = update_draws(seeded, musl=musl_source(musl_server), ny=ny_source(ny_server), now=NOW)

    assert [r.reason for r in report.rejected] == ["game code 'megamillions' is not powerball"]
    assert {sources_of(seeded)[d.draw_date] for d in NEWER_DRAWS} == {"ny"}


def test_a_musl_body_that_is_not_json_fails_the_source_and_ny_is_asked(
    seeded: Store, musl_server: MuslServer, ny_server: NyServer
) -> None:
    musl_server.inject(MUSL_PATH, raw_body("[" * 200_000))
    ny_server.add_draws(NEWER_DRAWS)

    report = update_draws(seeded, musl=musl_source(musl_server), ny=ny_source(ny_server), now=NOW)

    assert outcomes(report, "musl") == ["failed: response body is JSON nested too deeply to read; falling back"]
    assert len(musl_server.requests_to(MUSL_PATH)) == 1  # a failed source is not asked again
    assert [r.reason for r in report.rejected] == ["response body is JSON nested too deeply to read"]
    assert sorted(report.new_draws) == [d.draw_date for d in NEWER_DRAWS]


def test_a_null_ny_body_fails_the_source_and_the_bundled_snapshot_is_asked(seeded: Store, ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, raw_body("null"))
    before = draws_checksum(seeded)

    report = update_draws(seeded, musl=None, ny=ny_source(ny_server), now=NOW)

    assert outcomes(report, "ny") == ["failed: response body is JSON null, not a list of records; falling back"] * 2
    assert outcomes(report, "bundled") == ["ok: 0 draws"]
    assert report.sources_failed
    assert draws_checksum(seeded) == before


def test_an_oversize_ny_answer_fails_the_source_with_the_limit_named(seeded: Store, ny_server: NyServer) -> None:
    ny_server.inject(NY_PATH, huge_body(20_000_000))

    report = update_draws(seeded, musl=None, ny=ny_source(ny_server, max_bytes=50_000), now=NOW)

    (first, second) = outcomes(report, "ny")
    assert first.startswith("failed: response larger than the 50,000 byte limit (SHIOL_HTTP_MAX_BYTES)")
    assert first.endswith("; falling back") and second.startswith("failed: response larger")
    assert report.rejected == [] and update_count(seeded) == 2  # the seed and this update


def test_a_bad_bundled_csv_writes_nothing(seeded: Store, tmp_path: Path) -> None:
    csv = tmp_path / "export.csv"
    rows = [f"{d.draw_date:%m/%d/%Y},{' '.join(f'{n:02d}' for n in d.numbers())},{d.multiplier}" for d in MISSING_DRAWS]
    bad_row = "07/06/2024,07 19 28 44 65 ²,2"
    csv.write_text("Draw Date,Winning Numbers,Multiplier\n" + "\n".join([*rows, bad_row]) + "\n")
    before = draws_checksum(seeded)

    report = update_draws(seeded, musl=None, ny=None, offline=True, now=NOW, bundled=BundledSource(csv))

    assert [r.reason for r in report.rejected] == ["number '²' is not a whole number (ASCII digits 0-9 only)"]
    assert outcomes(report, "bundled") == ["ok: 6 draws, 1 rejected, batch not written"]
    assert draws_checksum(seeded) == before


def test_the_report_of_a_failed_update_is_recorded(seeded: Store, musl_server: MuslServer, ny_server: NyServer) -> None:
    payload = musl_drawing(date(2024, 7, 6), [44, 7, 65, 19, 28], 21, None)
    payload["drawDate"] = "2024-07-0\u00b2"
    musl_server.inject(MUSL_PATH, raw_body(json.dumps(payload)))
    ny_server.inject(NY_PATH, raw_body("[null]"))

    report = update_draws(seeded, musl=musl_source(musl_server), ny=ny_source(ny_server), now=NOW)

    with seeded.connect() as conn:
        (stored,) = conn.execute(
            "SELECT report_json FROM data_updates WHERE update_id = ?", [report.update_id]
        ).fetchone()
    reasons = [r["reason"] for r in json.loads(stored)["rejected"]]
    assert "draw date '2024-07-0²' is in an unknown format (want YYYY-MM-DD, ASCII digits)" in reasons
    assert "record is JSON null, not a JSON object" in reasons


def test_what_counts_as_a_source_answering(seeded: Store, musl_server: MuslServer, ny_server: NyServer) -> None:
    # A misdated MUSL drawing and a 404 are answers; NY failing beside them does not make "no source".
    asked, answered = MISSING_DRAWS[0].draw_date, date(2014, 6, 25)
    musl_server.add_payload(musl_drawing(answered, [5, 18, 27, 43, 58], 33, 2), served_for=asked)
    ny_server.inject(NY_PATH, http_error(500))

    report = update_draws(seeded, musl=musl_source(musl_server), ny=ny_source(ny_server), now=NOW)

    asks = report.source_asks()
    assert asks["musl"][0] is True and asks["ny"] == (False, "failed: HTTP 500; falling back")
    assert not report.no_source_answered and report.outcome == "nothing new"

    musl_server.inject(MUSL_PATH, http_error(500))
    failed = update_draws(seeded, musl=musl_source(musl_server), ny=ny_source(ny_server), now=NOW)
    assert failed.no_source_answered and failed.outcome == "no source answered"
    assert failed.as_dict()["outcome"] == "no source answered"
    assert "(online): no source answered" in failed.as_text().splitlines()[0]

    offline = update_draws(seeded, musl=None, ny=None, offline=True, now=NOW)
    assert not offline.no_source_answered and offline.source_asks() == {}
