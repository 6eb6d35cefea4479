"""Running a job: its steps in order, under one run id, through the run's lifecycle.

:func:`run_job` walks a job's steps: check every notebook's parameters -> open the run
(:class:`~shiol_lib.jobs.lifecycle.RunLifecycle`) -> execute each step notebook with the runner (a
failed step stops the job, later steps are ``skipped``) -> close the run. Parameters reach the
notebooks through the run id and the store, never through globals; the ones the job injects are
:data:`INJECTED_PARAMETERS`. The reader snapshot is republished once per step (the steps' kernels
defer theirs) and once at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from shiol_lib.archive import folders as archive
from shiol_lib.archive.compare import RerunResult, compare_outputs
from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.domain.environments import EnvironmentRecord
from shiol_lib.domain.runs import ErrorClass, RunStatus, StepStatus, Trigger
from shiol_lib.errors import (
    JobsFileError,
    RunnerError,
    SecretMissingError,
    ShiolError,
    disk_full_message,
    no_space_left,
)
from shiol_lib.execution.environment import capture
from shiol_lib.execution.kernels import KernelPool
from shiol_lib.execution.outcome import StepOutcome
from shiol_lib.execution.parameters import check_parameters
from shiol_lib.execution.processes import Interrupted
from shiol_lib.execution.runner import execute, rerun_command
from shiol_lib.execution.secrets import resolve_secrets
from shiol_lib.jobs.catalog import UPDATE_DATA, Step, find_step
from shiol_lib.jobs.context import DEFAULT_SEED, RunContext, RunOutcome
from shiol_lib.jobs.definitions import EnvironmentPolicy, JobSpec, StoreAccess, load_job
from shiol_lib.jobs.handed import (
    INJECTED_PARAMETERS,
    REPLAYED,
    iso,
    job_parameters,
    notebook_path,
    refuse_foreign_targets,
    step_values,
)
from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.jobs.liveness import Heartbeat, refuse_if_busy
from shiol_lib.jobs.progress import LogProgress, Progress
from shiol_lib.jobs.recovery import close_dead_runs
from shiol_lib.jobs.step_records import step_record
from shiol_lib.settings import Settings, child_environment
from shiol_lib.store import open_store
from shiol_lib.store import runs as run_table
from shiol_lib.store.core import JOB_PUBLISHES_ENV
from shiol_lib.store.jobs import STORE_WRITER_LOCK

__all__ = [
    "DEFAULT_SEED",
    "INJECTED_PARAMETERS",
    "RunContext",
    "RunOutcome",
    "find_step",
    "iso",
    "kernel_environment",
    "rerun",
    "run_job",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Options:
    offline: bool
    targets: tuple[date | None, date | None]  # the history end and target drawing asked for
    db_path: Path  # the one handed to the notebooks: the store, or the snapshot for a job that only reads
    timeout_s: float  # one wall-clock limit for the whole run...
    deadline: float  # ...ending at this monotonic instant
    kernels: KernelPool
    cells: bool  # papermill's per-cell progress bar
    secrets: Mapping[str, str]  # name -> value: in the kernel's environment only, redacted from every file


@dataclasses.dataclass(frozen=True)
class _Start:
    """What a run opens with: the job, its steps, why, its seed and locks, and what its kernels get."""

    job: str
    steps: tuple[Step, ...]
    context: RunContext
    seed: int
    locks: tuple[str, ...]
    secrets: Mapping[str, str]
    environment: EnvironmentRecord


def _secrets(spec: JobSpec) -> tuple[dict[str, str], tuple[str, ErrorClass] | None]:
    """The job's secrets from this environment, or why the run cannot start (a variable not set)."""
    try:
        return resolve_secrets(spec.secrets, os.environ, job=spec.name), None
    except SecretMissingError as err:
        return {}, (str(err), ErrorClass.CONFIGURATION)


def run_job(
    settings: Settings,
    job: str,
    *,
    context: RunContext | None = None,
    seed: int | None = None,
    offline: bool = False,
    target_draw_date: date | None = None,
    history_end: date | None = None,
    step_parameters: Mapping[str, Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    steps: tuple[Step, ...] | None = None,
    progress: Progress | None = None,
    definition: JobSpec | None = None,
) -> RunOutcome:
    """Run ``job`` (a job in force, built-in or the analyst's; or ``step`` with ``steps`` given) and archive it.

    ``context`` says why the run starts (default: manual). Its ``draw_date`` names the drawing a
    scheduled pipeline run processes: the run then uses the history up to that drawing, predicts the
    one after it, and ends ``waiting`` when no source has it yet. At most one run per job at a time,
    across processes, and one run of any job that writes the store: a start while another holds it is
    recorded ``refused`` and raises :class:`~shiol_lib.errors.JobBusyError`. ``parameters`` go to each
    step that declares them, over the definition's; ``step_parameters`` to one step, over both.
    ``progress`` hears of each step's start and end. ``definition``: the job's, as the caller
    has it in force (the scheduler's, kept through a broken edit of the file); default: read now.
    """
    context = context or RunContext()
    progress = progress if progress is not None else LogProgress()
    spec = definition or _definition(settings, job, steps)
    steps = spec.steps if steps is None else steps
    seed = DEFAULT_SEED if seed is None else seed
    locks = (STORE_WRITER_LOCK,) if spec.writes_store else ()
    refuse_if_busy(settings, job, context, seed=seed, locks=locks)  # a busy job answers now, before a kernel
    secrets, refusal = _secrets(spec)
    kernels = KernelPool()  # each step a fresh kernel; the next one started while a step runs
    try:
        _head_start(settings, steps, secrets, kernels)
        overrides = job_parameters({**spec.parameters, **(parameters or {})}, settings.notebooks_dir, steps)
        for name, values in (step_parameters or {}).items():
            overrides.setdefault(name, {}).update(values)
        if context.draw_date is not None:
            if UPDATE_DATA in steps:
                overrides.setdefault(UPDATE_DATA.name, {}).setdefault("expect_draw_date", context.draw_date.isoformat())
            history_end = history_end or context.draw_date
            target_draw_date = target_draw_date or draw_after(context.draw_date)
        record = capture(None, {**kernel_environment(settings), **secrets})
        start = _Start(job, steps, context, seed, locks, secrets, record)
        run = _prepare(settings, start, overrides)
    except BaseException:
        kernels.close()
        raise
    strict = spec.environment == EnvironmentPolicy.STRICT
    drifted = run_table.check_environment(run.store, job, record, strict=strict)
    refusal = refusal or ((drifted, ErrorClass.ENVIRONMENT) if drifted else None)
    timeout_s = spec.timeout_s or settings.run_timeout_s
    options = _Options(
        offline,
        (history_end, target_draw_date),
        settings.db_path if spec.writes_store else settings.snapshot_path,
        timeout_s,
        time.monotonic() + timeout_s,
        kernels,
        progress.cells,
        secrets,
    )
    verdict = _Verdict()
    if refusal is not None:  # recorded like a failed attempt: retried on its backoff, then a dead letter
        verdict.end(RunStatus.FAILED, f"refused: {refusal[0]}", refusal[1])
    with Heartbeat(run.store, run.job, run.run_id, every_s=settings.heartbeat_s), kernels:
        try:
            for position, step in enumerate(steps, start=1):
                _walk_step(run, (position, len(steps)), step, options, overrides.get(step.name, {}), progress, verdict)
        except Interrupted as err:
            verdict.end(RunStatus.INTERRUPTED, f"stopped by {err}", ErrorClass.INTERRUPTED)
            run.end_open_steps(StepStatus.INTERRUPTED)
        except Exception as err:  # noqa: BLE001 - whatever broke, the run is closed and archived
            _end_broken_run(settings, run, err, verdict)
    return run.close(verdict.status, error=verdict.error, error_class=verdict.error_class, results=verdict.results)


@dataclasses.dataclass
class _Verdict:
    """How the run is ending so far: success until a step says otherwise, and the steps' outcomes."""

    status: RunStatus = RunStatus.SUCCESS
    error: str | None = None
    error_class: ErrorClass | None = None
    results: list[StepOutcome] = dataclasses.field(default_factory=list)

    def end(self, status: RunStatus, error: str | None, error_class: ErrorClass | None) -> None:
        self.status, self.error, self.error_class = status, error, error_class


def _head_start(settings: Settings, steps: tuple[Step, ...], secrets: Mapping[str, str], kernels: KernelPool) -> None:
    """Get step 1's kernel going (its template's imports) while the job checks and opens the run."""
    first = notebook_path(settings.notebooks_dir, steps[0]).parent if steps else settings.notebooks_dir
    kernels.prepare({**kernel_environment(settings), **secrets}, first)


def _prepare(settings: Settings, start: _Start, overrides: Mapping[str, Mapping[str, Any]]) -> RunLifecycle:
    """Refuse a broken notebook or a bad parameter before anything is recorded, then open the run."""
    for step in start.steps:
        check_parameters(notebook_path(settings.notebooks_dir, step), overrides.get(step.name, {}))
        refuse_foreign_targets(settings, overrides.get(step.name, {}))
    return _open_run(settings, start)


def _walk_step(
    run: RunLifecycle,
    where: tuple[int, int],
    step: Step,
    options: _Options,
    values: Mapping[str, Any],
    progress: Progress,
    verdict: _Verdict,
) -> None:
    """Run one step (or record it ``skipped`` after an earlier one ended the run) and update ``verdict``."""
    position, count = where
    if verdict.status != RunStatus.SUCCESS:
        run.end_step(position, dataclasses.replace(run.manifest.steps[position - 1], status=StepStatus.SKIPPED))
        return
    progress.step_started(run.run_id, run.job, position, count, step.name)
    began, ended = time.monotonic(), StepStatus.INTERRUPTED
    try:
        result = _run_step(run, position, step, options, values)
        ended = result.status
    except ShiolError as err:  # refused before the notebook ran: bad parameters, empty store
        if no_space_left(err):  # a transition could not be recorded: the run ends disk_full (_end_broken_run)
            recorded = run.manifest.steps[position - 1].status  # the step may have ended well
            ended = StepStatus.FAILED if recorded in (StepStatus.RUNNING, StepStatus.PENDING) else recorded
            raise
        ended = _record_refused_step(run, position, step, err, verdict)
        return
    finally:
        progress.step_ended(run.run_id, run.job, position, count, step.name, str(ended), time.monotonic() - began)
    verdict.results.append(result)
    if result.status != StepStatus.SUCCESS:
        error_class = result.error_class
        if result.status == StepStatus.FAILED and no_space_left(RuntimeError(result.error or "")):
            error_class = ErrorClass.DISK_FULL  # the kernel met the full disk
        verdict.end(RunStatus(result.status), f"step {step.name}: {result.error}", error_class)


def _record_refused_step(
    run: RunLifecycle, position: int, step: Step, err: ShiolError, verdict: _Verdict
) -> StepStatus:
    """A step refused before its notebook ran (bad parameters, an empty store) ends ``failed``, and the run."""
    run.end_step(
        position, dataclasses.replace(run.manifest.steps[position - 1], status=StepStatus.FAILED, error=str(err))
    )
    verdict.end(RunStatus.FAILED, f"step {step.name}: {err}", ErrorClass.CELL_ERROR)
    return StepStatus.FAILED


def _end_broken_run(settings: Settings, run: RunLifecycle, err: Exception, verdict: _Verdict) -> None:
    """The run broke outside a step's notebook: it ends ``failed`` (``disk_full`` on a full disk, said plainly)."""
    if no_space_left(err):  # a clear line, not a traceback: the disk is full, not the code broken
        verdict.end(RunStatus.FAILED, disk_full_message(err, fallback=settings.db_path), ErrorClass.DISK_FULL)
        log.error("run %s: %s", run.run_id, verdict.error)
    else:
        log.exception("run %s broke", run.run_id)
        verdict.end(RunStatus.FAILED, f"{type(err).__name__}: {err}", verdict.error_class or ErrorClass.CELL_ERROR)
    try:
        with run.store.deferred_publishing(publish_at_end=False):  # the close publishes, or says why not
            run.end_open_steps(StepStatus.FAILED)
    except (ShiolError, OSError) as late:  # the disk: the close records the run, or keeps its cause
        if not no_space_left(late):
            raise
        log.warning("run %s: its open steps could not be recorded: %s", run.run_id, late)


def _definition(settings: Settings, job: str, steps: tuple[Step, ...] | None) -> JobSpec:
    """The job in force; given ``steps`` (``shiol run step``, a rerun of a job no longer defined) a writer's."""
    if steps is None:
        return load_job(settings, job)
    try:
        return load_job(settings, job)
    except (RunnerError, JobsFileError):
        return JobSpec(name=job, notebooks=(), steps=steps, store=StoreAccess.WRITE)


def _open_run(settings: Settings, start: _Start) -> RunLifecycle:
    job, context = start.job, start.context
    archive.ensure_writable(settings.runs_dir)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
    parent_run_id = context.parent_run_id
    for dead in close_dead_runs(settings, store):  # whoever notices a dead run closes it
        if dead.job == job and parent_run_id is None:
            parent_run_id = dead.run_id  # this run recovers it
    if parent_run_id is None and context.trigger == Trigger.RECOVERY:
        latest = run_table.list_runs(store, job=job, limit=1)
        parent_run_id = latest[0].run_id if latest and latest[0].status == RunStatus.CRASHED else None
    return RunLifecycle.open(
        settings,
        store,
        job,
        start.steps,
        dataclasses.replace(context, parent_run_id=parent_run_id),
        seed=start.seed,
        code=archive.code_version(Path(__file__).resolve().parents[2]),
        environment=archive.environment(),
        locks=start.locks,
        environment_record=start.environment,
    )


def _run_step(run: RunLifecycle, position: int, step: Step, options: _Options, extra: Mapping[str, Any]) -> StepOutcome:
    values = step_values(
        run, step, db_path=options.db_path, offline=options.offline, targets=options.targets, extra=extra
    )
    settings = run.settings
    notebook = notebook_path(settings.notebooks_dir, step)
    run.start_step(position, started_at=datetime.now(UTC))
    assert run.directory is not None
    outcome = execute(
        notebook,
        run.directory / f"{step.stem}.ipynb",
        values,
        title=run.title(),
        cwd=notebook.parent,
        timeout_s=max(1.0, options.deadline - time.monotonic()),
        timeout_error=f"the run exceeded its {options.timeout_s:g} s wall-clock limit; kernel killed",
        env=kernel_environment(settings),
        secrets=options.secrets,
        memory_mb=settings.step_memory_mb,
        kernels=options.kernels,
        ahead=position < len(run.manifest.steps),
        progress=options.cells,
    )
    command = rerun_command(
        notebook,
        outcome.parameters,
        cwd=notebook.parent,
        runs_dir=settings.runs_dir,
        run_id=run.run_id,
    )
    run.end_step(position, step_record(step, outcome, command=command))
    return outcome


def kernel_environment(settings: Settings) -> dict[str, str]:
    """A step kernel's environment: this one, ``SHIOL_*`` exactly ``settings``, snapshot left to the job.

    The same for every step of a run: one spare kernel fits all.
    """
    return {**child_environment(settings), JOB_PUBLISHES_ENV: "1"}


def rerun(settings: Settings, run_id: str, *, progress: Progress | None = None) -> RerunResult:
    """Re-execute a run with its recorded parameters and seed; compare outputs with the archive."""
    folder = archive.find_run_dir(settings.runs_dir, run_id)
    original = archive.read_manifest(folder)
    steps = tuple(Step(s.name, s.notebook) for s in original.steps)
    recorded = {s.name: s.parameters or {} for s in original.steps}
    fresh = set(INJECTED_PARAMETERS) - REPLAYED
    outcome = run_job(
        settings,
        original.job,
        context=RunContext(trigger=Trigger.RERUN, parent_run_id=run_id),
        seed=original.seed,
        offline=any(bool(params.get("offline")) for params in recorded.values()),
        history_end=original.history_end,
        target_draw_date=original.target_draw_date,
        step_parameters={
            name: {k: v for k, v in params.items() if k not in fresh} for name, params in recorded.items()
        },
        steps=steps,
        progress=progress,
    )
    comparison = compare_outputs(original, outcome.manifest, folders=(folder, outcome.directory))
    return RerunResult(outcome.run_id, run_id, outcome.status, outcome.directory, comparison)
