"""No silent success: ``shiol update-data`` as a real process when no network source answers.

Every case runs the command against real local servers (or closed ports) on a store seeded from the
bundled snapshot and asserts the distinct outcome: exit 10, ``no source answered`` in the report, the
progress line and the error, and no new "last answered" time in the store. The contrasts (nothing
new, one source down and the other answering, offline) still exit 0. The data-update job in the same
state ends ``failed`` with error class ``fetch`` (it is then retried and alerted like any failure).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from fakesources import MUSL_API_KEY, MUSL_PATH, NY_PATH, MuslServer, NyServer, cut_off, history_draws, http_error, slow

from shiol_lib.domain.runs import ExitCode

TIMEOUT_S = 0.5


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def shiol(
    home: Path, *args: str, musl: str | None = None, ny: str | None = None, key: str | None = MUSL_API_KEY
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        SHIOL_HOME=str(home),
        SHIOL_MUSL_BASE_URL=musl or _closed_port_url(),
        SHIOL_NY_BASE_URL=ny or _closed_port_url(),
        SHIOL_HTTP_TIMEOUT_S=str(TIMEOUT_S),
        SHIOL_HTTP_RETRIES="0",
        SHIOL_LOCK_TIMEOUT_S="5",
    )
    if key is not None:
        env["SHIOL_MUSL_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("seeded")
    done = shiol(home, "update-data", "--offline")
    assert done.returncode == 0, done.stderr
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template / "var", tmp_path / "home" / "var")
    return tmp_path / "home"


def source_rows(home: Path) -> dict[str, tuple]:
    with duckdb.connect(str(home / "var" / "shiol.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT source, last_asked_at, last_answered_at, last_outcome FROM source_answers")
        return {r[0]: r[1:] for r in rows.fetchall()}


@dataclass(frozen=True)
class Down:
    """How the sources fail: what each server does (None: a closed port) and whether MUSL has a key."""

    musl: Callable[[MuslServer], None] | None
    ny: Callable[[NyServer], None] | None
    key: bool = True


def _musl(fault: Callable[[], object]) -> Callable[[MuslServer], None]:
    return lambda server: server.inject(MUSL_PATH, fault())


def _ny(fault: Callable[[], object]) -> Callable[[NyServer], None]:
    return lambda server: server.inject(NY_PATH, fault())


DOWN = {
    "http-500-both": Down(_musl(lambda: http_error(500)), _ny(lambda: http_error(500))),
    "http-503-ny-no-musl-key": Down(None, _ny(lambda: http_error(503)), key=False),
    "reset-both": Down(_musl(lambda: cut_off(0)), _ny(lambda: cut_off(0))),
    "timeout-both": Down(_musl(lambda: slow(30)), _ny(lambda: slow(30))),
    "all-down": Down(None, None),
    "musl-429-ny-down": Down(_musl(lambda: http_error(429)), None),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.faults("no-source")) for c in DOWN])
def test_no_source_answering_exits_10_and_never_says_success(home: Path, case: str) -> None:
    down = DOWN[case]
    with MuslServer(history_draws()) as musl, NyServer(history_draws()) as ny:
        if down.musl:
            down.musl(musl)
        if down.ny:
            down.ny(ny)
        done = shiol(
            home,
            "update-data",
            "--json",
            musl=musl.url if down.musl else None,
            ny=ny.url if down.ny else None,
            key=MUSL_API_KEY if down.key else None,
        )

    assert done.returncode == ExitCode.NO_SOURCE == 10, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "no source answered"
    assert "ended: no source answered" in done.stderr and "success" not in done.stderr
    assert "error: no source answered (" in done.stderr
    rows = source_rows(home)
    assert set(rows) == ({"musl", "ny"} if down.key else {"ny"})
    assert all(answered is None and outcome.startswith("failed") for _, answered, outcome in rows.values())


def test_nothing_new_is_not_a_failure_and_the_answer_time_is_kept(home: Path) -> None:
    with MuslServer(history_draws()) as musl, NyServer(history_draws()) as ny:
        first = shiol(home, "update-data", "--json", musl=musl.url, ny=ny.url)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["outcome"] == "nothing new"
        answered = {name: row[1] for name, row in source_rows(home).items()}
        assert answered["ny"] is not None
        musl.inject(MUSL_PATH, http_error(500))  # MUSL down, NY still answering: not "no source"
        second = shiol(home, "update-data", "--json", musl=musl.url, ny=ny.url)
        assert second.returncode == 0, second.stderr
        ny.inject(NY_PATH, http_error(500))
        third = shiol(home, "update-data", musl=musl.url, ny=ny.url)
    assert third.returncode == 10
    rows = source_rows(home)
    assert rows["ny"][1] > answered["ny"] and rows["ny"][2].startswith("failed: HTTP 500")  # kept from run 2
    status = shiol(home, "status", "--json")
    sources = json.loads(status.stdout)["sources"]
    assert datetime.fromisoformat(sources["last_answered_at_utc"]) == rows["ny"][1]  # run 2's answer
    assert sources["seconds_since_last_answer"] >= 0
    assert sources["sources"]["ny"]["last_outcome"].startswith("failed: HTTP 500")
    text = shiol(home, "status")
    assert "last source answer: " in text.stdout and " ago (" in text.stdout


def test_offline_is_not_a_source_and_exits_0(home: Path) -> None:
    done = shiol(home, "update-data", "--offline", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "offline"
    assert source_rows(home) == {}
    status = json.loads(shiol(home, "status", "--json").stdout)["sources"]
    assert status == {"last_answered_at_utc": None, "seconds_since_last_answer": None, "sources": {}}
    assert "last source answer: never" in shiol(home, "status").stdout


@pytest.mark.slow
@pytest.mark.faults("no-source")
def test_the_data_update_job_fails_with_error_class_fetch_when_no_source_answers(home: Path) -> None:
    done = shiol(home, "run", "data_update", "--json")
    assert done.returncode == ExitCode.RUN_FAILED, done.stderr
    with duckdb.connect(str(home / "var" / "shiol.snapshot.duckdb"), read_only=True) as conn:
        row = conn.execute("SELECT status, error_class, error FROM runs WHERE job = 'data_update'").fetchone()
    assert row[0] == "failed" and row[1] == "fetch", row
    assert "no source answered" in row[2]
