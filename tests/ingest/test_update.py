"""`shiol update-data` / `shiol status` as subprocesses against real local MUSL and NY servers.

Each test gets its own SHIOL_HOME (a copy of a store seeded once from the bundled snapshot, or an
empty one) and points SHIOL_MUSL_BASE_URL / SHIOL_NY_BASE_URL at tests/fakesources.py servers; nothing
reaches the internet (a source a test does not serve points at a closed port).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

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
    future_draw_day,
    history_draws,
    html_page,
    http_error,
    musl_drawing,
    slow,
    truncated_json,
)

from shiol_lib.domain.draw_calendar import expected_draws, previous_draw
from shiol_lib.domain.draws import Draw
from shiol_lib.ingest.update import update_draws
from shiol_lib.store import Store, connect_snapshot, open_store

pytestmark = pytest.mark.slow  # every test here starts `shiol` (or a writer) as a subprocess

SHIOL = Path(sys.executable).parent / "shiol"
BUNDLED_COUNT = 1647
MISSING = [d.isoformat() for d in MISSING_DATES]
NEWER = [d.draw_date.isoformat() for d in NEWER_DRAWS]
JUNE_29 = Draw(date(2024, 6, 29), (26, 51, 54, 61, 69), 25, 3)  # the last bundled drawing
TIMEOUT_S = 0.5
RETRIES = 1


# -- running the command ------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def shiol(
    home: Path, *args: str, musl: MuslServer | None = None, ny: NyServer | None = None, key: str | None = MUSL_API_KEY
) -> Run:
    """Run the installed ``shiol`` console script with a test environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",  # a CI proxy must not see these
        SHIOL_HOME=str(home),
        SHIOL_MUSL_BASE_URL=musl.url if musl else _closed_port_url(),
        SHIOL_NY_BASE_URL=ny.url if ny else _closed_port_url(),
        SHIOL_HTTP_TIMEOUT_S=str(TIMEOUT_S),
        SHIOL_HTTP_RETRIES=str(RETRIES),
        SHIOL_HTTP_BACKOFF_S="0.05",
        SHIOL_HTTP_MAX_RETRY_AFTER_S="1",
        SHIOL_LOCK_TIMEOUT_S="5",
    )
    if key is not None:
        env["SHIOL_MUSL_API_KEY"] = key
    started = time.monotonic()
    done = subprocess.run([str(SHIOL), *args], env=env, capture_output=True, text=True, timeout=60)
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def update(home: Path, *, text: bool = False, **servers: Any) -> Run:
    return shiol(home, "update-data", *([] if text else ["--json"]), **servers)


def status(home: Path) -> dict[str, Any]:
    run = shiol(home, "status", "--json")
    assert run.code == 0, run.stderr
    return run.report


# -- reading the store --------------------------------------------------------------------------


def open_home(home: Path) -> Store:
    return Store(home / "var" / "shiol.duckdb", home / "var" / "shiol.snapshot.duckdb", lock_timeout_s=5)


def stored(home: Path) -> dict[date, tuple[Draw, str]]:
    """Every stored draw with its source, by date."""
    with open_home(home).connect() as conn:
        rows = conn.execute("SELECT draw_date, n1, n2, n3, n4, n5, pb, multiplier, source FROM draws").fetchall()
    return {r[0]: (Draw(r[0], tuple(r[1:6]), r[6], r[7]), r[8]) for r in rows}


def draws_of(home: Path) -> dict[date, Draw]:
    return {day: draw for day, (draw, _) in stored(home).items()}


def count(home: Path) -> int:
    return open_home(home).count_draws()


def attempts(report: dict[str, Any], source: str) -> list[str]:
    return [a["outcome"] for a in report["attempts"] if a["source"] == source]


# -- homes --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose store was seeded once, as ``shiol update-data --offline`` does (that command has
    its own test; calling the library here saves a process start per module)."""
    home = tmp_path_factory.mktemp("seeded")
    store = open_store(home / "var" / "shiol.duckdb", home / "var" / "shiol.snapshot.duckdb", lock_timeout_s=5)
    report = update_draws(store, musl=None, ny=None, offline=True)
    assert report.seeded == BUNDLED_COUNT and not report.rejected
    return home


@pytest.fixture
def home(seeded_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the seeded home (1,647 bundled draws)."""
    shutil.copytree(seeded_template / "var", tmp_path / "var")
    return tmp_path


# -- offline, online, idempotence, backfill -----------------------------------------------------


def test_offline_on_an_empty_home_loads_the_bundled_history(
    tmp_path: Path, musl_server: MuslServer, ny_server: NyServer
) -> None:
    run = shiol(tmp_path, "update-data", "--offline", "--json", musl=musl_server, ny=ny_server)

    assert run.code == 0, run.stderr
    report = run.report
    assert report["offline"] is True
    assert report["seeded"] == BUNDLED_COUNT
    assert report["new_draws"] == [] and report["backfilled"] == []
    assert report["rejected"] == [] and report["conflicts"] == []
    assert report["still_missing"] == MISSING
    assert musl_server.requests == [] and ny_server.requests == []  # offline asks nobody
    assert draws_of(tmp_path) == {d.draw_date: d for d in history_draws()}

    facts = status(tmp_path)
    assert facts["draws"]["count"] == BUNDLED_COUNT
    assert facts["draws"]["first"] == "2010-02-03"
    assert facts["draws"]["last"] == "2024-06-29"
    assert facts["draws"]["missing"] == MISSING
    assert facts["store"] == str(tmp_path / "var" / "shiol.duckdb")


def test_online_brings_in_exactly_the_newer_drawings_and_a_rerun_adds_nothing(
    home: Path, musl_server: MuslServer, ny_server: NyServer
) -> None:
    musl_server.add_draws(NEWER_DRAWS)
    ny_server.add_draws(NEWER_DRAWS)

    first = update(home, musl=musl_server, ny=ny_server)

    assert first.code == 0, first.stderr
    assert sorted(first.report["new_draws"]) == NEWER
    assert first.report["backfilled"] == []
    assert first.report["rejected"] == [] and first.report["conflicts"] == []
    assert first.report["still_missing"] == MISSING
    rows = stored(home)
    assert len(rows) == BUNDLED_COUNT + 3
    assert [rows[d.draw_date][0] for d in NEWER_DRAWS] == list(NEWER_DRAWS)  # sorted whites, None multiplier
    # MUSL's latest drawing came first; NY answered the two it was not asked for.
    assert {d.draw_date: rows[d.draw_date][1] for d in NEWER_DRAWS} == {
        date(2024, 7, 1): "ny",
        date(2024, 7, 3): "ny",
        date(2024, 7, 6): "musl",
    }
    first_musl = musl_server.requests_to(MUSL_PATH)[0]
    assert "DrawDate" not in first_musl.params and first_musl.headers["x-api-key"] == MUSL_API_KEY

    second = update(home, musl=musl_server, ny=ny_server)

    assert second.code == 0, second.stderr
    assert second.report["new_draws"] == [] and second.report["backfilled"] == []
    assert second.report["rejected"] == [] and second.report["conflicts"] == []
    assert stored(home) == rows


def test_served_missing_dates_are_backfilled(home: Path, musl_server: MuslServer, ny_server: NyServer) -> None:
    ny_server.add_draws(MISSING_DRAWS)

    run = update(home, musl=musl_server, ny=ny_server)

    assert run.code == 0, run.stderr
    assert sorted(run.report["backfilled"]) == MISSING
    assert run.report["new_draws"] == []
    assert run.report["still_missing"] == []
    draws = draws_of(home)
    assert [draws[d] for d in MISSING_DATES] == list(MISSING_DRAWS)
    asked = [r.params.get("$where", "") for r in ny_server.requests_to(NY_PATH)]
    assert any(w.startswith("draw_date in (") and "'2014-06-28T00:00:00.000'" in w for w in asked)

    facts = status(home)
    assert facts["draws"]["missing"] == []
    assert facts["draws"]["count"] == BUNDLED_COUNT + 6


# -- source fallbacks ---------------------------------------------------------------------------


def test_after_a_long_pause_ny_fills_the_gap_below_what_musl_just_stored(
    musl_server: MuslServer, ny_server: NyServer, home: Path
) -> None:
    # MUSL is asked for at most SHIOL_MUSL_MAX_DATES (12) of the newest drawings; the ~360 drawings
    # between the bundled history and those must then come from NY in the same update.
    latest = previous_draw(datetime.now(UTC))
    recent = expected_draws(latest - timedelta(days=60), latest)[-12:]
    recent_draws = [Draw(day, (3, 14, 25, 36, 47), 1 + i, 2) for i, day in enumerate(recent)]
    musl_server.add_draws(recent_draws)
    ny_server.add_draws([*NEWER_DRAWS, *recent_draws])

    run = update(home, musl=musl_server, ny=ny_server)

    assert run.code == 0, run.stderr
    assert set(NEWER) <= set(run.report["new_draws"])
    rows = stored(home)
    assert [rows[d.draw_date][0] for d in NEWER_DRAWS] == list(NEWER_DRAWS)
    assert {rows[d][1] for d in recent[-6:]} == {"musl"}
    wheres = [r.params["$where"] for r in ny_server.requests_to(NY_PATH)]
    assert wheres[0] == "draw_date > '2024-06-17T00:00:00.000'"  # five stored drawings back from 2024-06-29


def test_musl_without_a_key_is_skipped_and_ny_used(musl_server: MuslServer, ny_server: NyServer, home: Path) -> None:
    musl_server.add_draws(NEWER_DRAWS)
    ny_server.add_draws(NEWER_DRAWS)

    run = update(home, musl=musl_server, ny=ny_server, key=None)

    assert run.code == 0, run.stderr
    assert attempts(run.report, "musl") == ["skipped: no API key (SHIOL_MUSL_API_KEY)"]
    assert musl_server.requests == []
    assert sorted(run.report["new_draws"]) == NEWER
    assert run.report["sources_used"] == ["ny"]
    assert {stored(home)[d.draw_date][1] for d in NEWER_DRAWS} == {"ny"}


def test_musl_wrong_key_is_not_retried_and_ny_used(musl_server: MuslServer, ny_server: NyServer, home: Path) -> None:
    ny_server.add_draws(NEWER_DRAWS)

    run = update(home, musl=musl_server, ny=ny_server, key="not-the-key")

    assert run.code == 0, run.stderr
    assert attempts(run.report, "musl") == ["failed: HTTP 401; falling back"]
    assert len(musl_server.requests_to(MUSL_PATH)) == 1
    assert sorted(run.report["new_draws"]) == NEWER


def test_musl_failing_falls_back_to_ny(musl_server: MuslServer, ny_server: NyServer, home: Path) -> None:
    musl_server.add_draws(NEWER_DRAWS)
    ny_server.add_draws(NEWER_DRAWS)
    musl_server.inject(MUSL_PATH, http_error(500))

    run = update(home, musl=musl_server, ny=ny_server)

    assert run.code == 0, run.stderr
    assert attempts(run.report, "musl") == ["failed: HTTP 500; falling back"]
    assert len(musl_server.requests_to(MUSL_PATH)) == RETRIES + 1
    assert sorted(run.report["new_draws"]) == NEWER
    assert {stored(home)[d.draw_date][1] for d in NEWER_DRAWS} == {"ny"}


def test_both_sources_failing_fall_back_to_the_bundled_snapshot(
    tmp_path: Path, musl_server: MuslServer, ny_server: NyServer
) -> None:
    musl_server.inject(MUSL_PATH, http_error(500))
    ny_server.inject(NY_PATH, http_error(503))

    run = update(tmp_path, musl=musl_server, ny=ny_server)

    assert run.code == 10, run.stderr  # no source answered: not a silent success
    report = run.report
    assert report["outcome"] == "no source answered"
    assert report["seeded"] == BUNDLED_COUNT
    assert report["sources_used"] == ["bundled"]
    assert attempts(report, "musl") == ["failed: HTTP 500; falling back"]
    assert attempts(report, "ny") == ["failed: HTTP 503; falling back"] * 2  # newer records, missing dates
    assert attempts(report, "bundled") and attempts(report, "bundled")[0].startswith("ok")
    assert report["new_draws"] == [] and report["still_missing"] == MISSING
    assert count(tmp_path) == BUNDLED_COUNT


def test_a_slow_source_falls_back_within_the_timeout(musl_server: MuslServer, ny_server: NyServer, home: Path) -> None:
    musl_server.inject(MUSL_PATH, slow(30))
    ny_server.add_draws(NEWER_DRAWS)

    run = update(home, musl=musl_server, ny=ny_server)

    assert run.code == 0, run.stderr
    assert run.elapsed < 30  # it gave up on the slow source: the server's answer takes 30 s
    assert attempts(run.report, "musl") == [f"failed: no answer within {TIMEOUT_S:g} s; falling back"]
    assert sorted(run.report["new_draws"]) == NEWER


def test_a_musl_drawing_still_reporting_is_pending_not_stored(
    musl_server: MuslServer, ny_server: NyServer, home: Path
) -> None:
    musl_server.add_payload(musl_drawing(date(2024, 7, 1), status="reporting"))

    run = update(home, musl=musl_server, ny=ny_server)

    assert run.code == 0, run.stderr
    assert run.report["pending"] == [{"source": "musl", "draw_date": "2024-07-01", "status": "reporting"}]
    assert run.report["new_draws"] == []
    assert count(home) == BUNDLED_COUNT


# -- invalid records: exit 3, nothing of the batch written ----------------------------------------


def _record(day: str, numbers: str, multiplier: str | None = "2") -> dict[str, str]:
    record = {"draw_date": day, "winning_numbers": numbers}
    if multiplier is not None:
        record["multiplier"] = multiplier
    return record


def _ny_serving(bad: dict[str, str]) -> Callable[[NyServer], None]:
    def setup(server: NyServer) -> None:
        server.add_draws(NEWER_DRAWS[:2])  # valid records of the same batch
        server.add_records([bad])

    return setup


def _ny_spoiled(fault: Fault) -> Callable[[NyServer], None]:
    def setup(server: NyServer) -> None:
        server.add_draws(NEWER_DRAWS)
        server.inject(NY_PATH, fault)

    return setup


@dataclass(frozen=True)
class Rejected:
    """A source batch with one bad record or body, and what the report must say about it."""

    source: str
    reason: str
    record: str  # a fragment of the record as printed
    ny: Callable[[NyServer], None]
    musl: Callable[[MuslServer], None] | None = None  # None: no MUSL key, the source is skipped


FUTURE = future_draw_day()
REJECTED = {
    "ny-white-out-of-matrix": Rejected(
        "ny",
        "white ball(s) [70] outside 1-69 of the 2015-69/26 matrix",
        '"winning_numbers": "07 19 28 44 70 21"',
        _ny_serving(_record("2024-07-06T00:00:00.000", "07 19 28 44 70 21")),
    ),
    "ny-duplicate-balls": Rejected(
        "ny",
        "white balls [7, 19, 19, 44, 65] are not distinct",
        '"winning_numbers": "07 19 19 44 65 21"',
        _ny_serving(_record("2024-07-06T00:00:00.000", "07 19 19 44 65 21")),
    ),
    "ny-tuesday": Rejected(
        "ny",
        "2024-07-02 (Tuesday) is not a scheduled draw day",
        '"draw_date": "2024-07-02T00:00:00.000"',
        _ny_serving(_record("2024-07-02T00:00:00.000", "07 19 28 44 65 21")),
    ),
    "ny-future-date": Rejected(
        "ny",
        f"{FUTURE.isoformat()} is in the future",
        f'"draw_date": "{FUTURE.isoformat()}T00:00:00.000"',
        _ny_serving(_record(f"{FUTURE.isoformat()}T00:00:00.000", "07 19 28 44 65 21")),
    ),
    "ny-unknown-date-format": Rejected(
        "ny",
        "draw date 'July 6, 2024' is in an unknown format",
        '"draw_date": "July 6, 2024"',
        _ny_serving(_record("July 6, 2024", "07 19 28 44 65 21")),
    ),
    "ny-html-page": Rejected(
        "ny", "response body is an HTML page, not JSON", "<!DOCTYPE html><html>", _ny_spoiled(html_page())
    ),
    "ny-truncated-json": Rejected(
        "ny",
        "response body is malformed or truncated JSON",
        '[{"draw_date": "2024-07-01T00:00:00.000"',
        _ny_spoiled(truncated_json()),
    ),
    "musl-white-out-of-matrix": Rejected(
        "musl",
        "white ball(s) [70] outside 1-69",
        '"drawDate": "2024-07-06"',
        ny=lambda server: None,
        musl=lambda server: server.add_payload(musl_drawing(date(2024, 7, 6), [44, 7, 70, 19, 28], 21, 2)),
    ),
    "musl-truncated-json": Rejected(
        "musl",
        "response body is malformed or truncated JSON",
        '[{"draw_date"',
        ny=lambda server: None,
        musl=lambda server: (server.add_draws(NEWER_DRAWS), server.inject(MUSL_PATH, truncated_json())),
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_a_batch_with_one_invalid_record_exits_3_and_writes_nothing(
    musl_server: MuslServer, ny_server: NyServer, home: Path, case: str
) -> None:
    expected = REJECTED[case]
    expected.ny(ny_server)
    if expected.musl is not None:
        expected.musl(musl_server)

    run = update(home, musl=musl_server, ny=ny_server, key=MUSL_API_KEY if expected.musl else None, text=True)

    assert run.code == 3, (run.stdout, run.stderr)
    lines = [line.strip() for line in run.stdout.splitlines()]
    assert any(
        line.startswith(f"[{expected.source}] {expected.reason}") and expected.record in line for line in lines
    ), run.stdout
    assert "record(s) rejected; their batches were not written" in run.stderr
    assert count(home) == BUNDLED_COUNT
    assert not set(draws_of(home)) & {d.draw_date for d in NEWER_DRAWS}  # nor the valid records beside it


# -- conflicts: exit 4, stored value kept -------------------------------------------------------


def test_a_conflicting_source_exits_4_and_the_stored_value_is_kept(ny_server: NyServer, home: Path) -> None:
    offered = Draw(date(2024, 6, 29), (3, 51, 54, 61, 69), 25, 3)
    ny_server.add_draws([offered, *NEWER_DRAWS])

    run = update(home, ny=ny_server, key=None, text=True)

    assert run.code == 4, (run.stdout, run.stderr)
    assert f"[ny] 2024-06-29: stored {JUNE_29.as_text()} / offered {offered.as_text()}" in run.stdout
    assert "1 conflict(s) with stored draws; stored values kept" in run.stderr
    draws = draws_of(home)
    assert draws[date(2024, 6, 29)] == JUNE_29
    assert [draws[d.draw_date] for d in NEWER_DRAWS] == list(NEWER_DRAWS)  # a conflict blocks nothing else
    with open_home(home).connect() as conn:
        assert conn.execute("SELECT draw_date, source, stored, offered FROM draw_conflicts").fetchall() == [
            (date(2024, 6, 29), "ny", JUNE_29.as_text(), offered.as_text())
        ]


# -- a write interrupted between INSERT and COMMIT -----------------------------------------------

INTERRUPTED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from contextlib import contextmanager
    from datetime import date, datetime, timezone
    from pathlib import Path

    from shiol_lib.domain.draws import Draw
    from shiol_lib.store import Store

    mode, db_path, snapshot_path = sys.argv[1:4]
    real_connect = Store.connect

    class Interrupting:
        '''A connection that dies (SIGKILL) or raises right after inserting into draws.'''

        def __init__(self, conn):
            self._conn = conn

        def __getattr__(self, name):
            return getattr(self._conn, name)

        def execute(self, sql, *args):
            result = self._conn.execute(sql, *args)
            if sql.lstrip().upper().startswith("INSERT INTO DRAWS"):
                seen = self._conn.execute("SELECT count(*) FROM draws").fetchone()[0]
                print(f"inserted: {seen} rows inside the transaction", flush=True)
                if mode == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("fault injected between INSERT and COMMIT")
            return result

    @contextmanager
    def connect(self):
        with real_connect(self) as conn:
            yield Interrupting(conn)

    Store.connect = connect
    store = Store(Path(db_path), Path(snapshot_path), lock_timeout_s=5)
    draws = [
        Draw(date(2024, 7, 1), (1, 6, 40, 51, 67), 2, 2),
        Draw(date(2024, 7, 3), (12, 25, 33, 48, 60), 14, 3),
        Draw(date(2024, 7, 6), (7, 19, 28, 44, 65), 21, None),
    ]
    store.apply_draws(draws, source="test", fetched_at=datetime.now(timezone.utc))
    print("committed", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["kill", "raise"])
def test_a_write_interrupted_before_commit_leaves_the_store_as_it_was(home: Path, mode: str) -> None:
    store = open_home(home)
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WRITER, mode, str(store.path), str(store.snapshot_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert f"inserted: {BUNDLED_COUNT + 3} rows inside the transaction" in done.stdout, done.stderr
    assert "committed" not in done.stdout
    if mode == "kill":
        assert done.returncode == -signal.SIGKILL
    else:
        assert done.returncode == 1 and "fault injected between INSERT and COMMIT" in done.stderr
    assert count(home) == BUNDLED_COUNT
    assert not set(draws_of(home)) & {d.draw_date for d in NEWER_DRAWS}
    with connect_snapshot(store.snapshot_path) as reader:  # the snapshot was not republished either
        assert reader.execute("SELECT count(*) FROM draws").fetchone()[0] == BUNDLED_COUNT
