"""A workbench home for the archive tests: a real store and archive, runs closed as the runner closes them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.archive.verify import Verification, artefact_hashes, verify_archive
from shiol_lib.cli.main import cli
from shiol_lib.domain.draws import TICKET_COLUMNS
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.store import Store, open_store
from shiol_lib.store import predictions as prediction_table
from shiol_lib.store import runs as run_table

T0 = datetime(2026, 11, 28, 4, 29, tzinfo=UTC)
KEY = "a-key-kept-outside-runs"


class Home:
    """A workbench home with a store and an archive, and runs closed as the runner closes them."""

    def __init__(self, root: Path, key: str | None = None) -> None:
        self.root, self.key = root, key
        self.runs = root / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.store: Store = open_store(
            root / "var" / "shiol.duckdb", root / "var" / "shiol.snapshot.duckdb", lock_timeout_s=5
        )

    def close_run(self, minutes: int = 0, status: str = "success", *, outputs: bool = False) -> tuple[str, Path]:
        """Close a run as the runner does; with ``outputs`` it first stores tickets and an artefact."""
        started = T0 + timedelta(minutes=minutes)
        run_id = archive.new_run_id(started)
        directory = archive.run_dir(self.runs, "pipeline", run_id, started)
        directory.mkdir(parents=True)
        run_table.insert_run(self.store, running_row(run_id, started, directory))
        (directory / "60_analyze_performance.html").write_text("<p>No evidence of an edge (p = 0.19)</p>")
        (directory / "60_analyze_performance.ipynb").write_text('{"cells": []}')
        (directory / "60_analyze_performance.log").write_text("ok\n")
        manifest = Manifest(
            run_id=run_id,
            job="pipeline",
            trigger="manual",
            status=RunStatus(status),
            started_at=started,
            steps=[StepRecord("performance_analysis", "60_analyze_performance.ipynb", StepStatus(status))],
        )
        manifest.artefacts = artefact_hashes(directory)
        if outputs:
            store_outputs(self.store, run_id, seed=1)
            manifest.outputs = prediction_table.output_hashes(self.store, run_id)
            if status == "crashed":  # recovery hashes a crashed run's outputs, then discards its tickets
                prediction_table.discard_predictions(self.store, run_id)
        path = archive.write_manifest(directory, manifest)
        entry = ledger.append_entry(
            self.runs, run_id=run_id, job="pipeline", status=status, manifest_path=path, key=self.key
        )
        run_table.finish_run(
            self.store,
            run_id,
            status=status,
            finished_at=started + timedelta(minutes=1),
            ledger_head=(entry["seq"], entry["hash"]),
        )
        return run_id, directory

    def verify(self, key: str | None = None) -> Verification:
        """What ``shiol runs verify`` finds (no run in flight; the store's outputs compared)."""
        runs = run_table.archived_runs(self.store)
        return verify_archive(
            self.runs,
            anchor=run_table.ledger_anchor(self.store),
            runs=runs,
            key=key if key is not None else self.key,
            outputs={r: prediction_table.output_hashes(self.store, r) for r in runs},
        )

    def problems(self, key: str | None = None) -> list[str]:
        return [p.problem for p in self.verify(key).problems]

    def cli_verify(self, key: str | None = None, *args: str) -> tuple[int, str]:
        env = {"SHIOL_HOME": str(self.root), **({"SHIOL_LEDGER_KEY": key} if key else {})}
        result = CliRunner().invoke(cli, ["runs", "verify", *args], env=env)
        return result.exit_code, result.output

    @property
    def ledger_path(self) -> Path:
        return self.runs / ledger.LEDGER


def running_row(
    run_id: str,
    started: datetime,
    folder: Path,
    *,
    pid: int = 1,
    host: str = "h",
    heartbeat: datetime | None = None,
) -> run_table.RunRow:
    """The row of a manual pipeline run in flight (``running``), as the lifecycle inserts it when a run opens."""
    return run_table.RunRow(
        run_id=run_id,
        job="pipeline",
        slot=None,
        trigger="manual",
        status="running",
        started_at=started,
        finished_at=None,
        error=None,
        error_class=None,
        target_draw_date=None,
        attempt=1,
        parent_run_id=None,
        seed=1,
        pid=pid,
        host=host,
        heartbeat_at=heartbeat or started,
        archive_dir=str(folder),
    )


def store_outputs(store: Store, run_id: str, *, seed: int) -> None:
    """Store three tickets and a metrics artefact under ``run_id`` (different ones for another ``seed``)."""
    tickets = pd.DataFrame(
        [[rank, 1, 2 + seed, 20, 30, 40 + rank, 6, 0.5 / rank] for rank in (1, 2, 3)], columns=TICKET_COLUMNS
    )
    prediction_table.replace_predictions(store, run_id, date(2026, 11, 30), tickets)
    prediction_table.save_artifact(store, run_id, "metrics.generate_predictions", {"seed": seed})
