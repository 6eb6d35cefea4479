"""Build an archive of two years of operation through the real run lifecycle (no notebook kernels).

Each run is opened, walked step by step and closed by :class:`shiol_lib.jobs.lifecycle.RunLifecycle`,
exactly as :func:`shiol_lib.jobs.run.run_job` does: the store rows, the manifest at every transition,
the ledger entry, the store's anchor and the dashboard written at the close. Only the kernel is left
out: each step's executed notebook, HTML report and log are written with the archive's own atomic
writer (``folders.write_atomic``) at realistic sizes (1.7 MB per pipeline run), and a pipeline run
stores its 100 tickets through ``store.predictions``. What the archive costs later (verify, the pages,
the listing, the planner's history) depends on these records and bytes, not on how a kernel made them.

The clock is simulated: the lifecycle's ``datetime`` is replaced by one whose ``now()`` is the run's
simulated instant, so runs spread over two years (pipeline Mon/Wed/Sat, data update Tue/Thu/Fri/Sun,
evaluation 3 a day, a research or analyst run now and then, about 3 % failures retried).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from shiol_lib.archive import folders
from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.runs import ErrorClass, RunStatus, StepStatus, Trigger
from shiol_lib.jobs import catalog
from shiol_lib.jobs import lifecycle as lifecycle_module
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import Store, open_store
from shiol_lib.store import predictions as prediction_table

START = datetime(2024, 7, 1, tzinfo=NEW_YORK)
FAILURE_RATE = 0.03
# Bytes per step file: (notebook, html, log). A pipeline run totals about 1.7 MB.
PIPELINE_SIZES = (150_000, 125_000, 6_000)
SMALL_SIZES = {"data_update": (30_000, 40_000, 3_000), "evaluation": (40_000, 50_000, 2_000)}
RESEARCH_SIZES = (200_000, 160_000, 8_000)
METRICS = {
    "backtest_edge": False,
    "backtest_p_value": 0.41,
    "backtest_white_mean": 0.361,
    "backtest_white_ci": [0.35, 0.372],
    "backtest_white_expected": 25 / 69,
}


@dataclass(frozen=True)
class PlannedRun:
    """One run of the simulated two years: when, which job, which steps, whether a step fails."""

    at: datetime
    job: str
    steps: tuple[catalog.Step, ...]
    trigger: Trigger
    fail_step: int | None = None  # 1-based; None: success
    attempt: int = 1


def schedule(n: int, seed: int = 7) -> list[PlannedRun]:
    """The first ``n`` runs of two years of operation, oldest first (failures followed by their retry)."""
    rng = random.Random(seed)
    runs: list[PlannedRun] = []
    pipeline = (
        catalog.UPDATE_DATA,
        catalog.ANALYZE,
        catalog.OPTIMIZE,
        catalog.VALIDATE,
        catalog.PREDICT,
        catalog.PERFORMANCE,
    )
    day = START
    while len(runs) < n:
        todays: list[PlannedRun] = []
        for hour in (6, 12, 18):
            todays.append(
                PlannedRun(day.replace(hour=hour, minute=15), "evaluation", (catalog.EVALUATE,), Trigger.ON_TIME)
            )
        weekday = day.weekday()
        if weekday in (1, 3, 4, 6):
            todays.append(PlannedRun(day.replace(hour=6), "data_update", (catalog.UPDATE_DATA,), Trigger.ON_TIME))
        if weekday in (0, 2, 5):
            todays.append(PlannedRun(day.replace(hour=23, minute=29), "pipeline", pipeline, Trigger.ON_TIME))
        if rng.random() < 0.05:  # a research sweep or an analyst's manual run, about one in three weeks
            step = catalog.RESEARCH_BACKTEST if rng.random() < 0.5 else catalog.RESEARCH_POWER
            todays.append(PlannedRun(day.replace(hour=14), step.name, (step,), Trigger.MANUAL))
        for run in sorted(todays, key=lambda r: r.at):
            if rng.random() < FAILURE_RATE:
                runs.append(replace(run, fail_step=rng.randint(1, len(run.steps))))
                runs.append(replace(run, at=run.at + timedelta(minutes=3), trigger=Trigger.RETRY, attempt=2))
            else:
                runs.append(run)
        day += timedelta(days=1)
    return runs[:n]


class _Clock(datetime):
    """``datetime`` whose ``now()`` is the simulated instant (installed in the lifecycle module only)."""

    current = START

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
        return cls.current.astimezone(tz) if tz else cls.current.replace(tzinfo=None)


def _sizes(job: str) -> tuple[int, int, int]:
    if job == "pipeline":
        return PIPELINE_SIZES
    return SMALL_SIZES.get(job, RESEARCH_SIZES)


def _tickets(rng: np.random.Generator) -> pd.DataFrame:
    whites = np.sort(np.array([rng.choice(69, 5, replace=False) + 1 for _ in range(100)]), axis=1)
    frame = pd.DataFrame(whites, columns=["n1", "n2", "n3", "n4", "n5"])
    frame.insert(0, "rank", np.arange(1, 101))
    frame["pb"] = rng.integers(1, 27, 100)
    frame["score"] = rng.random(100)
    return frame


def _run_one(settings: Settings, store: Store, plan: PlannedRun, rng: np.random.Generator) -> None:
    _Clock.current = plan.at.astimezone(UTC)
    context = RunContext(
        trigger=plan.trigger, slot=plan.at if plan.trigger != Trigger.MANUAL else None, attempt=plan.attempt
    )
    run = RunLifecycle.open(
        settings, store, plan.job, plan.steps, context, seed=20240701, code={"git_commit": "bench"}, environment={}
    )
    assert run.directory is not None
    sizes = _sizes(plan.job)
    status, error = RunStatus.SUCCESS, None
    for position, step in enumerate(plan.steps, start=1):
        started = _Clock.current = _Clock.current + timedelta(seconds=1)
        run.start_step(position, started_at=started)
        names = (f"{step.stem}.ipynb", f"{step.stem}.html", f"{step.stem}.log")
        for name, size in zip(names, sizes, strict=True):
            folders.write_atomic(run.directory / name, rng.bytes(size))
        failed = plan.fail_step == position
        _Clock.current += timedelta(seconds=6 if plan.job == "pipeline" else 2)
        record = replace(
            run.manifest.steps[position - 1],
            status=StepStatus.FAILED if failed else StepStatus.SUCCESS,
            started_at=started,
            finished_at=_Clock.current,
            parameters={"run_id": run.run_id, "seed": 20240701},
            output=names[0],
            html=names[1],
            log=names[2],
            error="ValueError: a simulated cell error" if failed else None,
            error_class=str(ErrorClass.CELL_ERROR) if failed else None,
            failed_cell=3 if failed else None,
        )
        run.end_step(position, record)
        if failed:
            status, error = RunStatus.FAILED, f"step {step.name}: ValueError: a simulated cell error"
            run.end_open_steps(StepStatus.SKIPPED)
            break
        if step == catalog.PREDICT:
            target = (plan.at + timedelta(days=2)).date()
            prediction_table.replace_predictions(store, run.run_id, target, _tickets(rng))
        if step == catalog.PERFORMANCE:  # what the dashboard's headline shows
            prediction_table.save_artifact(store, run.run_id, "metrics.performance_analysis", METRICS)
    run.close(status, error=error, error_class=ErrorClass.CELL_ERROR if error else None, results=[])


class _HeldStore(Store):
    """The store with one connection held for the whole build (opening a DuckDB file costs ~20 ms).

    The SQL each lifecycle transition runs is unchanged; only the per-call open and close are saved,
    which the archive's later costs do not depend on.
    """

    def __init__(self, path: Path, snapshot_path: Path) -> None:
        super().__init__(path, snapshot_path)
        self.connection = duckdb.connect(str(path))

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:  # type: ignore[override]
        yield self.connection


def build_one(home: Path, plan: PlannedRun) -> None:
    """One more run, closed as the lifecycle closes it (every file synced, as in operation)."""
    build(home, [plan], fast=False)


def build(home: Path, runs: list[PlannedRun], *, start: int = 0, fast: bool = True) -> None:
    """Write ``runs[start:]`` into the archive and store of ``home`` (created when absent).

    ``fast``: files are not synced to disk while building (what is measured later does not depend on it).
    """
    settings = load_settings({"SHIOL_HOME": str(home)})
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    open_store(settings.db_path, settings.snapshot_path)  # creates and migrates the store
    store = _HeldStore(settings.db_path, settings.snapshot_path)
    rng = np.random.default_rng(start)
    real, real_fsync = lifecycle_module.datetime, folders.os.fsync
    lifecycle_module.datetime = _Clock  # type: ignore[misc]
    if fast:
        folders.os.fsync = lambda fd: None  # building only: durability is not what is measured later
    try:
        with store.deferred_publishing():  # one snapshot at the end: the bench measures the archive, not copies
            for plan in runs[start:]:
                _run_one(settings, store, plan, rng)
    finally:
        lifecycle_module.datetime = real  # type: ignore[misc]
        folders.os.fsync = real_fsync
        store.connection.close()


def days_of(runs: list[PlannedRun]) -> Iterator[date]:
    """The simulated days covered, oldest first."""
    yield from sorted({r.at.date() for r in runs})
