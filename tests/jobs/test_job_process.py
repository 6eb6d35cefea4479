"""The job process gets its settings and request explicitly, on stdin, and hands them to its kernels."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
from fakesources import NEWER_DRAWS

from shiol_lib.domain.runs import Trigger
from shiol_lib.ingest.update import update_draws
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.job_process import RunRequest, RunResult, start_job_process
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store


def test_a_run_request_survives_the_trip_as_json() -> None:
    context = RunContext(
        trigger=Trigger.MISSED_DRAW,
        slot=datetime(2024, 7, 2, 3, 29, tzinfo=UTC),
        draw_date=date(2024, 7, 1),
        attempt=3,
        parent_run_id="20240701T000000Z-abcdef",
    )
    request = RunRequest(job="pipeline", context=context, offline=True, seed=7)
    assert RunRequest.from_dict(request.to_dict()) == request


def test_a_result_that_was_never_written_reads_as_none(tmp_path: Path) -> None:
    assert RunResult.read(tmp_path / "absent.json") is None
    (tmp_path / "torn.json").write_text('{"run_id": "x", "sta')
    assert RunResult.read(tmp_path / "torn.json") is None


@pytest.mark.slow
def test_the_job_and_its_kernel_use_the_settings_given_not_the_environment(
    tmp_path: Path, ny_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings that exist only in this object: a store and an archive in odd places, and a NY source on
    # a local server that has three drawings the bundled history lacks. Nothing of it is in os.environ.
    ny_server.add_draws(NEWER_DRAWS)
    settings = load_settings(
        {
            "SHIOL_HOME": str(tmp_path / "home"),
            "SHIOL_DB_PATH": str(tmp_path / "elsewhere" / "db.duckdb"),
            "SHIOL_RUNS_DIR": str(tmp_path / "archive"),
            "SHIOL_NY_BASE_URL": ny_server.url,
            "SHIOL_HTTP_RETRIES": "0",
            "SHIOL_LOCK_TIMEOUT_S": "60",
        }
    )
    for name in [k for k in os.environ if k.startswith("SHIOL_")]:
        monkeypatch.delenv(name)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    update_draws(store, musl=None, ny=None, offline=True, now=datetime(2024, 6, 30, tzinfo=UTC))
    proc, document = start_job_process(settings, RunRequest(job="data_update"), tmp_path / "result.json")
    _, err = proc.communicate(document, timeout=300)
    result = RunResult.read(tmp_path / "result.json")
    assert proc.returncode == 0 and result is not None, err
    assert result.status == "success" and result.run_id
    assert len(list((tmp_path / "archive" / "data_update").glob(f"*/{result.run_id}/manifest.json"))) == 1
    assert not (tmp_path / "home" / "runs").exists()
    with duckdb.connect(str(settings.snapshot_path), read_only=True) as conn:
        dates = {r[0] for r in conn.execute("SELECT draw_date FROM draws WHERE draw_date > '2024-06-29'").fetchall()}
    assert dates == {d.draw_date for d in NEWER_DRAWS}  # the kernel asked the NY server of these settings
    assert any(r.path.endswith("d6yy-54nr.json") for r in ny_server.requests)
