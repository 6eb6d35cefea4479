"""Jobs as ordered notebook steps, run under one run id, recorded in the store and the archive.

:func:`run_job` walks a job's steps in order: open the run (store row, archive folder, manifest
``running``) -> execute each step notebook with the runner (a failed step stops the job, later steps
are ``skipped``) -> hash the run's outputs -> close the run (final manifest, ledger entry, index page,
store row). Parameters reach the notebooks through the run id and the store, never through globals. The
reader snapshot is republished once per step (the steps' kernels defer theirs) and once at the end.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import nbformat

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.compare import RerunResult, compare_outputs
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.archive.verify import artefact_hashes
from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.domain.history import data_hash
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError, JobBusyError, RunnerError, ShiolError
from shiol_lib.execution.kernels import KernelPool
from shiol_lib.execution.resources import run_totals
from shiol_lib.execution.runner import (
    NotebookResult,
    check_parameters,
    execute_notebook,
    read_parameters,
    render_html,
    rerun_command,
)
from shiol_lib.jobs.catalog import UPDATE_DATA, Step, find_job, find_step
from shiol_lib.jobs.liveness import Heartbeat, Interrupted, job_is_alive
from shiol_lib.jobs.progress import LogProgress, Progress
from shiol_lib.jobs.recovery import close_dead_runs
from shiol_lib.reports import dashboard as run_index
from shiol_lib.settings import Settings, child_environment
from shiol_lib.store import Store, open_store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import predictions as prediction_table
from shiol_lib.store import runs as run_table
from shiol_lib.store.core import JOB_PUBLISHES_ENV

log = logging.getLogger(__name__)

DEFAULT_SEED = 20240701


@dataclass
class RunOutcome:
    """What a job run did: its id, final status, folder, manifest and per-step results."""

    run_id: str
    job: str
    status: RunStatus
    directory: Path
    manifest: Manifest
    results: list[NotebookResult] = field(default_factory=list)


@dataclass
class _Run:
    settings: Settings
    store: Store
    run_id: str
    job: str
    steps: tuple[Step, ...]
    directory: Path
    manifest: Manifest


def run_job(
    settings: Settings,
    job: str,
    *,
    trigger: str = "manual",
    slot: datetime | None = None,
    draw_date: date | None = None,
    attempt: int = 1,
    seed: int | None = None,
    offline: bool = False,
    target_draw_date: date | None = None,
    history_end: date | None = None,
    step_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    parent_run_id: str | None = None,
    steps: tuple[Step, ...] | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run ``job`` (a key of :data:`JOBS`, or ``step`` with ``steps`` given) and archive it.

    ``draw_date`` names the drawing a scheduled pipeline run processes: the run then uses the history
    up to that drawing, predicts the one after it, and ends ``waiting`` when no source has it yet.
    At most one run per job at a time, across processes: a second start is recorded ``refused`` and
    raises :class:`JobBusyError`. ``progress`` hears of each step's start and end (default: a log line).
    """
    progress = progress if progress is not None else LogProgress()
    if steps is None:
        steps = find_job(job).steps
    overrides = {name: dict(values) for name, values in (step_parameters or {}).items()}
    if draw_date is not None and UPDATE_DATA in steps:
        overrides.setdefault(UPDATE_DATA.name, {}).setdefault("expect_draw_date", draw_date.isoformat())
    kernels = KernelPool()  # each step a fresh kernel; the next one started while a step runs
    kernels.prepare(kernel_environment(settings), settings.notebooks_dir)  # step 1's starts during the checks
    try:
        for step in steps:  # refuse a broken notebook or a bad parameter before anything is recorded
            check_parameters(settings.notebooks_dir / step.notebook, overrides.get(step.name, {}))
            _refuse_foreign_targets(settings, overrides.get(step.name, {}))
        if draw_date is not None:
            history_end = history_end or draw_date
            target_draw_date = target_draw_date or draw_after(draw_date)
        run = _open_run(settings, job, steps, trigger=trigger, slot=slot, draw_date=draw_date, attempt=attempt,
                        seed=seed, parent_run_id=parent_run_id)
    except BaseException:
        kernels.close()
        raise
    deadline = time.monotonic() + settings.run_timeout_s  # one wall-clock limit for the whole run
    context = {"offline": offline, "target_draw_date": target_draw_date, "history_end": history_end,
               "deadline": deadline}
    results: list[NotebookResult] = []
    status, error = RunStatus.SUCCESS, None
    with Heartbeat(run.store, run.job, run.run_id, every_s=settings.heartbeat_s), kernels:
        context["kernels"] = kernels
        context["cells"] = progress.cells
        try:
            for position, step in enumerate(steps, start=1):
                if status != RunStatus.SUCCESS:
                    _record_step(run, position, step, status=StepStatus.SKIPPED)
                    continue
                progress.step_started(run.run_id, run.job, position, len(steps), step.name)
                began, ended = time.monotonic(), StepStatus.INTERRUPTED
                try:
                    result = _run_step(run, position, step, context, overrides.get(step.name, {}))
                    ended = StepStatus(result.status)
                except ShiolError as err:  # refused before the notebook ran: bad parameters, empty store
                    run.manifest.steps[position - 1].error = str(err)
                    _record_step(run, position, step, status=StepStatus.FAILED, error=str(err))
                    status, error, ended = RunStatus.FAILED, f"step {step.name}: {err}", StepStatus.FAILED
                    continue
                finally:
                    progress.step_ended(run.run_id, run.job, position, len(steps), step.name, str(ended),
                                        time.monotonic() - began)
                results.append(result)
                if result.status != StepStatus.SUCCESS:
                    status, error = RunStatus(result.status), f"step {step.name}: {result.error}"
        except Interrupted as err:
            status, error = RunStatus.INTERRUPTED, f"stopped by {err}"
            _close_open_steps(run, StepStatus.INTERRUPTED)
        except Exception as err:  # noqa: BLE001 - whatever broke, the run is closed and archived
            log.exception("run %s broke", run.run_id)
            status, error = RunStatus.FAILED, f"{type(err).__name__}: {err}"
            _close_open_steps(run, StepStatus.FAILED)
    return _close_run(run, status, error, results)


def _refuse_foreign_targets(settings: Settings, values: Mapping[str, Any]) -> None:
    """Archived runs are read-only to the step commands, and a step writes only to its run's store.

    A ``run_id`` parameter would make the step write under another run's id (replacing an archived
    run's predictions behind the archive's back); a ``db_path`` would point it at another store.
    """
    if "run_id" in values:
        raise RunnerError(
            f"-p run_id {values['run_id']!r} is refused: a step run records its results under its own new run "
            "id, and archived runs are read-only (use 'shiol rerun RUN_ID' to re-execute one into a new run)"
        )
    if "db_path" in values and Path(str(values["db_path"])).expanduser().resolve() != settings.db_path:
        raise RunnerError(
            f"-p db_path {values['db_path']!r} is refused: the step would write to another store than this "
            f"run's ({settings.db_path}); set SHIOL_DB_PATH (or SHIOL_HOME) instead"
        )


def _close_open_steps(run: _Run, status: StepStatus) -> None:
    """After a run was cut short: the running step gets ``status``, the ones not started ``skipped``."""
    for position, (step, entry) in enumerate(zip(run.steps, run.manifest.steps, strict=True), start=1):
        if entry.status in (StepStatus.RUNNING, StepStatus.PENDING):
            ended = status if entry.status == StepStatus.RUNNING else StepStatus.SKIPPED
            _record_step(run, position, step, status=ended)


def _open_run(settings: Settings, job: str, steps: tuple[Step, ...], *, trigger: str, slot: datetime | None,
              draw_date: date | None, attempt: int, seed: int | None, parent_run_id: str | None) -> _Run:
    archive.ensure_writable(settings.runs_dir)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
    for dead in close_dead_runs(settings, store):  # whoever notices a dead run closes it
        if dead.job == job and parent_run_id is None:
            parent_run_id = dead.run_id  # this run recovers it
    if parent_run_id is None and trigger == "recovery":
        latest = run_table.list_runs(store, job=job, limit=1)
        parent_run_id = latest[0].run_id if latest and latest[0].status == RunStatus.CRASHED else None
    started = datetime.now(UTC)
    run_id = archive.new_run_id(started)
    directory = archive.run_dir(settings.runs_dir, job, run_id, started)
    seed = DEFAULT_SEED if seed is None else seed
    holder = job_table.start_run_exclusive(store, run_table.RunRow(
        run_id=run_id, job=job, slot=slot, trigger=trigger, status=RunStatus.RUNNING, started_at=started,
        finished_at=None, error=None, error_class=None, target_draw_date=None, attempt=attempt,
        parent_run_id=parent_run_id, seed=seed, pid=os.getpid(), host=socket.gethostname(),
        heartbeat_at=started, archive_dir=str(directory), draw_date=draw_date,
    ), is_alive=lambda h: job_is_alive(h, stale_s=settings.heartbeat_stale_s))
    if holder is not None:
        raise JobBusyError(
            f"job {job} is already running (run {holder.run_id}, pid {holder.pid} on {holder.host}); "
            f"this start was recorded as refused run {run_id}"
        )
    manifest = Manifest(
        run_id=run_id, job=job, trigger=trigger, status=RunStatus.RUNNING, started_at=started,
        steps=[StepRecord(s.name, s.notebook) for s in steps], slot=slot, draw_date=draw_date, attempt=attempt,
        seed=seed, parent_run_id=parent_run_id,
        code=archive.code_version(Path(__file__).resolve().parents[2]), environment=archive.environment(),
    )
    try:
        archive.ensure_writable(directory)
        archive.write_manifest(directory, manifest)
    except ArchiveError as err:
        run_table.finish_run(store, run_id, status=RunStatus.FAILED, finished_at=datetime.now(UTC),
                             error=f"archive: {err}", error_class="archive")
        job_table.release_job(store, job, run_id)
        raise
    return _Run(settings, store, run_id, job, steps, directory, manifest)


def _settle_target(run: _Run, context: dict[str, Any]) -> None:
    """Fix the history cut-off and the target drawing from the store, once, and record them."""
    if run.manifest.history_end is not None:
        return
    frame = run.store.read_draws()
    if frame.empty:
        raise RunnerError("the store holds no draws; run 'shiol update-data' first")
    last = frame["draw_date"].max().date()
    history_end = context["history_end"] or last
    used = frame[frame["draw_date"] <= str(history_end)]
    target = context["target_draw_date"] or draw_after(history_end)
    run.manifest.history_end = history_end
    run.manifest.target_draw_date = target
    run.manifest.input = {
        "draws_sha256": data_hash(used),
        "draw_count": int(len(used)),
        "first_draw": used["draw_date"].min().date().isoformat(),
        "last_draw": history_end.isoformat(),
    }
    if run.manifest.draw_date is None:  # a manual run processes the latest drawing it uses
        run.manifest.draw_date = history_end
    run_table.update_run(run.store, run.run_id, target_draw_date=target, draw_date=run.manifest.draw_date)


def _step_values(run: _Run, step: Step, context: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    declared = read_parameters(run.settings.notebooks_dir / step.notebook)
    if {"history_end", "target_draw_date"} & set(declared):
        _settle_target(run, context)
    common = {
        "db_path": str(run.settings.db_path),
        "run_id": run.run_id,
        "seed": int(run.manifest.seed or 0),
        "offline": bool(context["offline"]),
        "history_end": _iso(run.manifest.history_end),
        "target_draw_date": _iso(run.manifest.target_draw_date),
    }
    values = {k: v for k, v in common.items() if k in declared}
    values.update(extra)
    return values


def _run_step(run: _Run, position: int, step: Step, context: dict[str, Any],
              extra: Mapping[str, Any]) -> NotebookResult:
    values = _step_values(run, step, context, extra)
    started = datetime.now(UTC)
    _record_step(run, position, step, status=StepStatus.RUNNING, started_at=started)
    result = execute_notebook(
        run.settings.notebooks_dir / step.notebook, run.directory / f"{step.stem}.ipynb", values,
        cwd=run.settings.notebooks_dir, timeout_s=max(1.0, context["deadline"] - time.monotonic()),
        env=kernel_environment(run.settings), memory_mb=run.settings.step_memory_mb,
        kernels=context["kernels"], ahead=position < len(run.steps), progress=context["cells"], render=False,
    )
    if result.status == "timeout":
        result.error = f"the run exceeded its {run.settings.run_timeout_s:g} s wall-clock limit; kernel killed"
    elif _ERROR_NAMES.get(result.error_name or "") == "waiting":
        result.status = StepStatus.WAITING  # the drawing's result is not published yet: not a failure
    if result.html is not None:  # the report's title and error block name the run, job, drawing and status
        result.html = render_html(nbformat.read(result.output, as_version=4), result.html, run_id=run.run_id,
                                  job=run.job, target_draw_date=_iso(run.manifest.target_draw_date),
                                  status=str(result.status), error=result.error)
    entry = run.manifest.steps[position - 1]
    entry.status = StepStatus(result.status)
    entry.started_at, entry.finished_at = result.started_at, result.finished_at
    entry.duration_s = round(result.duration_s, 3)
    entry.parameters = dict(result.parameters)
    entry.output = result.output.name if result.output.exists() else None
    entry.html = result.html.name if result.html else None
    entry.log = result.log_path.name if result.log_path else None
    entry.error, entry.error_class, entry.failed_cell = result.error, result.error_class, result.failed_cell
    entry.command = rerun_command(run.settings.notebooks_dir / step.notebook, result.parameters,
                                  cwd=run.settings.notebooks_dir, runs_dir=run.settings.runs_dir, run_id=run.run_id)
    entry.peak_rss_mb, entry.cpu_s = result.peak_rss_mb, result.cpu_s
    _record_step(run, position, step, status=result.status, started_at=result.started_at,
                 finished_at=result.finished_at, error=result.error, failed_cell=result.failed_cell)
    return result


def _record_step(run: _Run, position: int, step: Step, *, status: StepStatus, started_at: datetime | None = None,
                 finished_at: datetime | None = None, error: str | None = None, failed_cell: int | None = None) -> None:
    run.manifest.steps[position - 1].status = status
    archive.write_manifest(run.directory, run.manifest)
    with run.store.deferred_publishing(publish_at_end=status != StepStatus.RUNNING):  # once a step, at its end
        run_table.upsert_step(run.store, run.run_id, position, step.name, step.notebook, status=status,
                              started_at=started_at, finished_at=finished_at, error=error, failed_cell=failed_cell)
        run_table.update_run(run.store, run.run_id, heartbeat_at=datetime.now(UTC))


def _close_run(run: _Run, status: RunStatus, error: str | None, results: list[NotebookResult]) -> RunOutcome:
    finished = datetime.now(UTC)
    manifest = run.manifest
    manifest.finished_at = finished
    manifest.duration_s = round((finished - manifest.started_at).total_seconds(), 3)
    manifest.error = error
    manifest.outputs = prediction_table.output_hashes(run.store, run.run_id)
    manifest.metrics = prediction_table.run_metrics(run.store, run.run_id)
    error_class = _error_class(results) if status not in (RunStatus.SUCCESS, RunStatus.INTERRUPTED) else None
    if status == RunStatus.INTERRUPTED:
        error_class = "interrupted"
    elif error_class == "waiting":
        status = RunStatus.WAITING
    manifest.status = status
    manifest.artefacts = artefact_hashes(run.directory)
    manifest.error_class = error_class
    manifest.peak_rss_mb, manifest.cpu_s = run_totals(manifest.steps)
    try:
        manifest_path = archive.write_manifest(run.directory, run.manifest)
        entry = ledger.append_entry(run.settings.runs_dir, run_id=run.run_id, job=run.job, status=status,
                                    manifest_path=manifest_path, key=run.settings.ledger_key)
    except ArchiveError as err:
        run_table.finish_run(run.store, run.run_id, status=RunStatus.FAILED, finished_at=finished,
                             error=f"archive: {err}", error_class="archive")
        job_table.release_job(run.store, run.job, run.run_id)
        raise
    with run.store.deferred_publishing():  # the run's end, its lock and its dead letters: one publish
        run_table.finish_run(run.store, run.run_id, status=status, finished_at=finished, error=error,
                             error_class=error_class, ledger_head=(entry["seq"], entry["hash"]))
        job_table.release_job(run.store, run.job, run.run_id)
        if status == RunStatus.SUCCESS:  # before the listing, which shows the open dead letters
            job_table.resolve_dead_letters(run.store, job=run.job, slot=manifest.slot,
                                           draw_date=manifest.draw_date, run_id=run.run_id, at=finished)
    try:
        run_index.write_index(run.settings.runs_dir, retry_backoff_s=run.settings.retry_backoff_s,
                              ledger_key=run.settings.ledger_key, **run_index.store_context(run.store))
    except ArchiveError as err:  # the run is closed and recorded; only its listing is late
        log.warning("run %s closed, but runs/index.html was not rewritten: %s", run.run_id, err)
    return RunOutcome(run.run_id, run.job, status, run.directory, manifest, results)


# Exceptions a step notebook raises on purpose, and the error class (or status) each stands for.
_ERROR_NAMES = {"DrawNotPublishedError": "waiting", "FetchError": "fetch", "UpdateError": "validation"}


def _error_class(results: list[NotebookResult]) -> str | None:
    failed = next((r for r in results if r.status != StepStatus.SUCCESS), None)
    if failed is None:
        return "cell error"  # refused before its notebook ran
    return _ERROR_NAMES.get(failed.error_name or "", failed.error_class)


def kernel_environment(settings: Settings) -> dict[str, str]:
    """A step kernel's environment: this one, ``SHIOL_*`` exactly ``settings``, snapshot left to the job.

    The same for every step of a run: one spare kernel fits all.
    """
    return {**child_environment(settings), JOB_PUBLISHES_ENV: "1"}


def _iso(day: date | None) -> str:
    return day.isoformat() if day is not None else ""


def rerun(settings: Settings, run_id: str, *, progress: Progress | None = None) -> RerunResult:
    """Re-execute a run with its recorded parameters and seed; compare outputs with the archive."""
    original = archive.read_manifest(archive.find_run_dir(settings.runs_dir, run_id))
    steps = tuple(find_step(s.name) for s in original.steps)
    recorded = {s.name: s.parameters or {} for s in original.steps}
    skip = {"db_path", "run_id", "seed", "history_end", "target_draw_date"}  # set anew or from the manifest
    outcome = run_job(
        settings, original.job, trigger="rerun", seed=original.seed,
        history_end=original.history_end, target_draw_date=original.target_draw_date,
        step_parameters={name: {k: v for k, v in params.items() if k not in skip} for name, params in recorded.items()},
        parent_run_id=run_id, steps=steps, progress=progress,
    )
    comparison = compare_outputs(original, outcome.manifest)
    return RerunResult(outcome.run_id, run_id, outcome.status, outcome.directory, comparison)
