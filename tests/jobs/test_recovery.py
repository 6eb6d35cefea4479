"""Closing a dead run: what a crashed run leaves behind is rendered, recorded and anchored, and its
half-finished outputs are never counted beside the recovery run's."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
from archive_support import running_row

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.archive.verify import verify_archive
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.jobs.recovery import close_dead_runs
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store
from shiol_lib.store import predictions as prediction_table
from shiol_lib.store import runs as run_table

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_run_is_closed_everywhere_and_its_tickets_are_discarded(tmp_path: Path) -> None:
    settings = load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_NOTEBOOKS_DIR": str(REPO / "notebooks")})
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    started = datetime.now(UTC) - timedelta(minutes=10)
    beat = started + timedelta(minutes=2)
    run_id = archive.new_run_id(started)
    folder = archive.run_dir(settings.runs_dir, "pipeline", run_id, started)
    folder.mkdir(parents=True)
    row = running_row(run_id, started, folder, pid=_dead_pid(), host=socket.gethostname(), heartbeat=beat)
    run_table.insert_run(store, dataclasses.replace(row, target_draw_date=date(2024, 7, 1)))
    manifest = Manifest(
        run_id=run_id,
        job="pipeline",
        trigger="manual",
        status=RunStatus.RUNNING,
        started_at=started,
        steps=[
            StepRecord("generate_predictions", "50_generate_predictions.ipynb", StepStatus.RUNNING, started_at=started),
            StepRecord("performance_analysis", "60_analyze_performance.ipynb"),
        ],
    )
    archive.write_manifest(folder, manifest)
    partial = nbformat.read(REPO / "notebooks" / "50_generate_predictions.ipynb", as_version=4)
    nbformat.write(partial, str(folder / "50_generate_predictions.ipynb.partial"))
    tickets = pd.DataFrame(
        {
            "rank": [1, 2],
            "n1": [1, 2],
            "n2": [3, 4],
            "n3": [5, 6],
            "n4": [7, 8],
            "n5": [9, 10],
            "pb": [1, 2],
            "score": [0.5, 0.4],
        }
    )
    prediction_table.replace_predictions(store, run_id, date(2024, 7, 1), tickets)

    closed = close_dead_runs(settings, store)

    assert [r.run_id for r in closed] == [run_id]
    row = run_table.get_run(store, run_id)
    assert row.status == "crashed" and row.finished_at == beat  # ended at its last heartbeat
    assert prediction_table.read_predictions(store, run_id).empty
    done = archive.read_manifest(folder)
    assert done.status == RunStatus.CRASHED and done.finished_at == beat
    assert [s.status for s in done.steps] == [StepStatus.CRASHED, StepStatus.SKIPPED]
    assert "its 2 stored tickets were discarded" in done.error and "predictions" in done.outputs
    assert (folder / "50_generate_predictions.html").exists() and not list(folder.glob("*.partial"))
    assert "The job process died during this step" in (folder / "50_generate_predictions.html").read_text()
    entry = ledger.read_ledger(settings.runs_dir)[-1]
    assert entry["run_id"] == run_id and entry["status"] == "crashed"
    assert run_table.ledger_anchor(store) == (entry["seq"], entry["hash"])
    result = verify_archive(
        settings.runs_dir, anchor=run_table.ledger_anchor(store), runs=run_table.archived_runs(store)
    )
    assert result.problems == []
    assert close_dead_runs(settings, store) == []  # closed once
