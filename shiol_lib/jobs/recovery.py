"""Closing runs whose job process died: crashed runs are closed in the archive, not forgotten.

Whoever notices a dead run (the scheduler at start-up and after each job, and every ``shiol run``
before it starts) calls :func:`close_dead_runs`. For each ``running`` row whose process is gone it
renders what the partial notebooks hold (or the report of a step that never started), writes the
manifest with status ``crashed`` and the last heartbeat as its end, appends the run's ledger entry,
closes the store row with the new ledger head in the same transaction, and rewrites the index.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.manifest import SCHEMA_VERSION, Manifest, StepRecord
from shiol_lib.archive.verify import artefact_hashes
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError, ShiolError
from shiol_lib.jobs.catalog import STEPS
from shiol_lib.jobs.liveness import job_is_alive
from shiol_lib.settings import Settings
from shiol_lib.store import Store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import runs as run_table

log = logging.getLogger(__name__)


def close_dead_runs(settings: Settings, store: Store, *, now: datetime | None = None) -> list[run_table.RunRow]:
    """Close every ``running`` run whose process is gone; returns the rows closed (as they were)."""
    now = now or datetime.now(UTC)
    closed = []
    for row in job_table.running_runs(store):
        holder = job_table.LockHolder(row.job, row.run_id, row.pid or 0, row.host or "",
                                      row.heartbeat_at or row.started_at)
        if job_is_alive(holder, stale_s=settings.heartbeat_stale_s, now=now):
            continue
        reason = (f"process {row.pid} on {row.host} died; last heartbeat "
                  f"{holder.heartbeat_at.isoformat()}, noticed {now.isoformat()}")
        close_crashed_run(settings, store, row, reason=reason)
        closed.append(row)
    return closed


def close_crashed_run(settings: Settings, store: Store, row: run_table.RunRow, *, reason: str) -> None:
    """Close one dead run everywhere: rendered partials, ``crashed`` manifest, ledger entry, store row."""
    from shiol_lib.reports import dashboard as run_index  # here, not at the top: a scheduler with no dead
    from shiol_lib.store import predictions as prediction_table  # run needs neither jinja2 nor pandas

    ended = row.heartbeat_at or row.started_at
    directory = Path(row.archive_dir) if row.archive_dir else None
    head = None
    if directory is not None and directory.is_dir():
        try:
            manifest = _manifest_of(store, directory, row)
            _close_steps(settings, store, row, directory, manifest, reason)
            manifest.outputs = prediction_table.output_hashes(store, row.run_id)
            discarded = prediction_table.discard_predictions(store, row.run_id)  # never counted twice
            manifest.status, manifest.error = RunStatus.CRASHED, f"crashed: {reason}" + (
                f"; its {discarded} stored tickets were discarded (their hash stays in outputs)" if discarded else "")
            manifest.finished_at = ended
            manifest.duration_s = round((ended - manifest.started_at).total_seconds(), 3)
            manifest.schema = SCHEMA_VERSION
            manifest.artefacts = artefact_hashes(directory)
            path = archive.write_manifest(directory, manifest)
            entry = ledger.append_entry(settings.runs_dir, run_id=row.run_id, job=row.job,
                                        status=RunStatus.CRASHED, manifest_path=path, key=settings.ledger_key)
            head = (entry["seq"], entry["hash"])
        except (ArchiveError, OSError) as err:  # still close the row: a dead run must not stay running
            log.error("run %s: its archive could not be closed (%s); closing the store row only", row.run_id, err)
    job_table.mark_crashed(store, row.run_id, at=ended, reason=reason, ledger_head=head)
    log.warning("run %s of %s closed as crashed: %s", row.run_id, row.job, reason)
    try:
        run_index.write_index(settings.runs_dir, retry_backoff_s=settings.retry_backoff_s,
                              ledger_key=settings.ledger_key, **run_index.store_context(store))
    except ArchiveError as err:
        log.warning("runs/index.html not rewritten after closing %s: %s", row.run_id, err)


def _manifest_of(store: Store, directory: Path, row: run_table.RunRow) -> Manifest:
    try:
        return archive.read_manifest(directory)
    except ArchiveError as err:  # a run that died before (or while) writing its manifest
        log.warning("run %s: manifest unreadable (%s); rebuilding it from the store", row.run_id, err)
        steps = run_table.read_steps(store, [row.run_id])
        return Manifest(
            run_id=row.run_id, job=row.job, trigger=row.trigger, status=RunStatus.RUNNING, started_at=row.started_at,
            steps=[StepRecord(str(s["step"]), str(s["notebook"]), StepStatus(str(s["status"])))
                   for _, s in steps.iterrows()],
            slot=row.slot, draw_date=row.draw_date, attempt=row.attempt, seed=row.seed,
            parent_run_id=row.parent_run_id, target_draw_date=row.target_draw_date,
        )


def _close_steps(settings: Settings, store: Store, row: run_table.RunRow, directory: Path, manifest: Manifest,
                 reason: str) -> None:
    """The running step becomes ``crashed`` with its partial notebook rendered; later ones ``skipped``."""
    from shiol_lib.execution.runner import render_html, write_unexecuted_report  # nbconvert only here

    for position, step in enumerate(manifest.steps, start=1):
        if step.status not in (StepStatus.RUNNING, StepStatus.PENDING):
            continue
        status = StepStatus.CRASHED if step.status == StepStatus.RUNNING else StepStatus.SKIPPED
        if status == StepStatus.CRASHED:
            about = {"run_id": row.run_id, "job": row.job, "status": str(StepStatus.CRASHED),
                     "target_draw_date": row.target_draw_date.isoformat() if row.target_draw_date else "",
                     "error": f"crashed: the job process died during this step ({reason})"}
            _render_partial(settings, directory, step, reason, render_html, write_unexecuted_report, about)
            step.error, step.error_class = f"the job process died during this step: {reason}", "crashed"
        step.status = status
        run_table.upsert_step(store, row.run_id, position, step.name, step.notebook, status=status,
                              started_at=step.started_at, error=step.error)


def _render_partial(settings: Settings, directory: Path, step: StepRecord, reason: str, render_html,
                    write_unexecuted_report, about: dict[str, str]) -> None:
    import nbformat

    stem = step.notebook.removesuffix(".ipynb")
    output = directory / f"{stem}.ipynb"
    partial = output.with_name(output.name + ".partial")
    try:
        if partial.exists():
            nb = nbformat.read(partial, as_version=4)
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                f"**The job process died during this step ({reason}).** What follows is what the notebook "
                "had saved when it stopped.", metadata={"tags": ["shiol-crashed"]}))
            nbformat.write(nb, str(partial))
            os.replace(partial, output)
            step.html = render_html(nb, output.with_suffix(".html"), **about).name
        else:
            source = settings.notebooks_dir / (STEPS[step.name].notebook if step.name in STEPS else step.notebook)
            step.html = write_unexecuted_report(source, output, f"the job process died ({reason})", **about).name
        step.output = output.name
        log_path = output.with_suffix(".log")
        step.log = log_path.name if log_path.exists() else None
    except (OSError, ShiolError, ValueError) as err:
        log.warning("run %s step %s: the partial notebook could not be rendered: %s", directory.name, step.name, err)
