"""The catalog of steps and jobs: which notebook each step runs, and each job as data.

A step here is a notebook the host runs; what the notebook does is :mod:`shiol_lib.steps`, called
inside its kernel. A job is a :class:`JobDefinition`: what differs between the pipeline, the data
update, the evaluation and the research sweeps is written here, once, and read by the lifecycle, the
planner, the scheduler and the CLI; nothing outside this module compares a job's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from shiol_lib.errors import ConfigError, RunnerError
from shiol_lib.settings import ENV_NAMES, Settings
from shiol_lib.settings import default as setting_default


@dataclass(frozen=True)
class Step:
    """One step of a job: a name and the notebook that performs it.

    A built-in step's notebook is a file name in the notebooks folder; an analyst's is an absolute path.
    """

    name: str
    notebook: str

    @property
    def stem(self) -> str:
        """The notebook's file name without ``.ipynb`` (also the stem of its archived files)."""
        return PurePath(self.notebook).stem


UPDATE_DATA = Step("update_data", "10_update_data.ipynb")
ANALYZE = Step("adaptive_analysis", "20_analyze_signals.ipynb")
OPTIMIZE = Step("weight_optimization", "30_optimize_weights.ipynb")
VALIDATE = Step("historical_validation", "40_validate_history.ipynb")
PREDICT = Step("generate_predictions", "50_generate_predictions.ipynb")
PERFORMANCE = Step("performance_analysis", "60_analyze_performance.ipynb")
EVALUATE = Step("evaluate_predictions", "70_evaluate_predictions.ipynb")
RESEARCH_BACKTEST = Step("research_backtest", "80_research_backtest.ipynb")
RESEARCH_POWER = Step("research_power", "81_detection_power.ipynb")


class ScheduleKind(StrEnum):
    """How a job is started: on its cron slots, on its cron slots owing each drawing, or only by hand."""

    CRON = "cron"
    AFTER_DRAWING = "after_drawing"  # cron slots, each run owed to the drawing before it (the pipeline)
    MANUAL = "manual"  # never scheduled (research sweeps, manual analyst jobs)


@dataclass(frozen=True)
class JobDefinition:
    """One job: its steps in order, and how and when it runs.

    ``cron_setting`` names the :class:`~shiol_lib.settings.Settings` field that holds the job's cron
    (``SHIOL_PIPELINE_CRON`` and friends); a job without one (an analyst's) gives its expression in
    ``cron``. ``task_name`` is its Rocketry task. ``timeout_s`` and ``retry_backoff_s`` of ``None`` take
    the settings' ``run_timeout_s`` and ``retry_backoff_s``. ``reports_performance``: the dashboard's
    "latest performance" comes from this job's latest successful run.
    """

    name: str
    steps: tuple[Step, ...]
    description: str = ""
    schedule: ScheduleKind = ScheduleKind.MANUAL
    cron_setting: str | None = None
    task_name: str | None = None
    timeout_s: float | None = None
    retry_backoff_s: tuple[float, ...] | None = None
    builtin: bool = True
    reports_performance: bool = False
    cron: str | None = None

    def __post_init__(self) -> None:
        if self.scheduled and (self.cron_setting is None) == (self.cron is None):
            raise ConfigError(f"job {self.name!r} is scheduled: give it exactly one of cron_setting and cron")
        if self.scheduled and not self.task_name:
            raise ConfigError(f"job {self.name!r} is scheduled: give it a task_name (its Rocketry task)")

    def cron_expression(self, settings: Settings | None = None) -> str:
        """The job's cron expression: from ``settings`` (default: the settings' defaults), else its own."""
        if self.cron_setting is None:
            if self.cron is None:
                raise ConfigError(f"job {self.name!r} has no schedule (it runs only by hand)")
            return self.cron
        if settings is None:
            return str(setting_default(self.cron_setting))
        return str(getattr(settings, self.cron_setting))

    @property
    def cron_source(self) -> str:
        """Where the cron expression comes from, for messages: its variable (``SHIOL_PIPELINE_CRON``) or the job."""
        if self.cron_setting is not None:
            return ENV_NAMES.get(self.cron_setting, self.cron_setting)
        return f"job {self.name}"

    @property
    def scheduled(self) -> bool:
        """Whether the scheduler runs this job on slots (not only by hand)."""
        return self.schedule != ScheduleKind.MANUAL

    @property
    def drawing_linked(self) -> bool:
        """Whether each run processes one drawing (owed after it is drawn; missed when never run)."""
        return self.schedule == ScheduleKind.AFTER_DRAWING

    @property
    def updates_data(self) -> bool:
        """Whether the job's steps update the store from the sources (it is told which drawing to expect)."""
        return UPDATE_DATA in self.steps


PIPELINE = JobDefinition(
    "pipeline",
    (UPDATE_DATA, ANALYZE, OPTIMIZE, VALIDATE, PREDICT, PERFORMANCE),
    "update, analyse, optimize, validate, predict and measure, after each drawing",
    ScheduleKind.AFTER_DRAWING,
    cron_setting="pipeline_cron",
    task_name="post_drawing_pipeline",
    reports_performance=True,
)
DATA_UPDATE = JobDefinition(
    "data_update",
    (UPDATE_DATA,),
    "fetch newer drawings and backfill missing ones",
    ScheduleKind.CRON,
    cron_setting="update_cron",
    task_name="maintenance_data_update",
)
EVALUATION = JobDefinition(
    "evaluation",
    (EVALUATE,),
    "evaluate stored tickets whose drawing is known",
    ScheduleKind.CRON,
    cron_setting="evaluation_cron",
    task_name="prediction_evaluation",
)
RESEARCH_BACKTEST_JOB = JobDefinition(
    "research_backtest", (RESEARCH_BACKTEST,), "walk-forward backtest sweep (shiol research backtest)"
)
RESEARCH_POWER_JOB = JobDefinition(
    "research_power", (RESEARCH_POWER,), "detection power of the no-edge test (shiol research power)"
)

JOBS: dict[str, JobDefinition] = {
    job.name: job for job in (PIPELINE, DATA_UPDATE, EVALUATION, RESEARCH_BACKTEST_JOB, RESEARCH_POWER_JOB)
}


def register_job(job: JobDefinition) -> JobDefinition:
    """Add ``job`` to the catalog (an analyst's definition); raises :class:`ConfigError` on a name taken."""
    if job.name in JOBS:
        raise ConfigError(f"job {job.name!r} is already defined; pick another name")
    taken = {j.task_name for j in JOBS.values() if j.task_name}
    if job.task_name is not None and job.task_name in taken:
        raise ConfigError(f"job {job.name!r}: task name {job.task_name!r} is already taken")
    JOBS[job.name] = job
    return job


def scheduled_jobs() -> tuple[JobDefinition, ...]:
    """The jobs the scheduler runs, in the order it lists them (built-ins first, then those registered)."""
    return tuple(job for job in JOBS.values() if job.scheduled)


def scheduled_job_names() -> tuple[str, ...]:
    """The names of :func:`scheduled_jobs` (the jobs ``shiol run`` and ``shiol runs missed --job`` take)."""
    return tuple(job.name for job in scheduled_jobs())


def performance_jobs() -> frozenset[str]:
    """The jobs whose latest successful run the dashboard shows as the latest performance."""
    return frozenset(job.name for job in JOBS.values() if job.reports_performance)


# The built-in jobs the scheduler runs (the Rocketry app's tasks); :func:`scheduled_jobs` adds registered ones.
SCHEDULED_JOBS: tuple[JobDefinition, ...] = scheduled_jobs()


def find_job(name: str) -> JobDefinition:
    """A job by its name; raises :class:`RunnerError` naming the known jobs."""
    try:
        return JOBS[name]
    except KeyError:
        raise RunnerError(f"unknown job {name!r}; known jobs: {', '.join(JOBS)}") from None


STEPS: dict[str, Step] = {
    s.name: s
    for s in (
        UPDATE_DATA,
        ANALYZE,
        OPTIMIZE,
        VALIDATE,
        PREDICT,
        PERFORMANCE,
        EVALUATE,
        RESEARCH_BACKTEST,
        RESEARCH_POWER,
    )
}


def find_step(name: str) -> Step:
    """A step by its name (``generate_predictions``) or notebook stem (``50_generate_predictions``)."""
    for step in STEPS.values():
        if name in (step.name, step.notebook, step.stem):
            return step
    known = ", ".join(f"{s.name} ({s.stem})" for s in STEPS.values())
    raise RunnerError(f"unknown step {name!r}; known steps: {known}")
