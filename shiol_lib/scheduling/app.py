"""The SHIOL+ scheduler: three jobs on the draw calendar, America/New_York.

- post_drawing_pipeline: Mon/Wed/Sat 23:29 (drawings at 22:59), the six-step pipeline
- maintenance_data_update: Tue/Thu/Fri/Sun 06:00, the data update notebook
- prediction_evaluation: 06:15, 12:15, 18:15, the evaluation notebook

The tasks are the catalog's scheduled jobs (:mod:`shiol_lib.jobs.catalog`), one each, named by their
``task_name``, and one per planned analyst job (``job_<name>``), added when the scheduler starts and
when an edit of the jobs file brings one in (between two Rocketry cycles, from its event loop). Schedules
come from the job definitions (jobs.toml > SHIOL_PIPELINE_CRON and friends > the built-in file). Rocketry only
triggers: whether a job is due (on time, catching up, a missed drawing, a retry, a recovery) is the
planner's answer from the store, so the promises survive crashes and restarts.

The app ships in the package, so an installed wheel runs it without a checkout: ``shiol schedule run``
(which becomes ``python -m shiol_lib.scheduling.app``), or ``python schedules.py`` in a checkout (a
shim that calls :func:`main`). SIGTERM stops it gracefully. Importing this module builds the app and
its tasks only; :func:`main` reads the settings, sets up logging and serves.
"""

from __future__ import annotations

import logging

from rocketry import Rocketry
from rocketry.conds import every

from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.jobs.catalog import SCHEDULED_JOBS, JobDefinition
from shiol_lib.logs import configure_logging
from shiol_lib.scheduling.scheduler import Scheduler

app = Rocketry(
    config={
        "timezone": NEW_YORK,
        "cycle_sleep": 1.0,
        "execution": "thread",
        "silence_task_prerun": True,
        "silence_task_logging": True,
    }
)
log = logging.getLogger(__name__)
scheduler: Scheduler | None = None  # set by main(): conditions answer False until then


@app.cond()
def job_is_due(job: str) -> bool:
    """The planner owes ``job`` a run now (errors are logged and read as not due)."""
    return scheduler is not None and scheduler.is_due(job)


_job_tasks: dict[str, str] = {}  # job -> its task's name


def add_job_task(job: JobDefinition) -> None:
    """Add the task of a scheduled ``job`` (named ``job.task_name``): when the planner owes it a run, run it."""
    assert job.task_name is not None
    _add_task(job.name, job.task_name, job.description)


def _add_task(job: str, task_name: str, description: str) -> None:
    def run_due() -> None:
        if scheduler is None:  # only a run forced past job_is_due gets here before main() sets it
            raise RuntimeError(f"cannot run {job}: the scheduler is not started (main() sets it)")
        scheduler.execute_due(job)

    run_due.__doc__ = f"Run {job} when the planner owes it a run: {description}."
    app.task(job_is_due(job=job), name=task_name, execution="thread")(run_due)
    _job_tasks[job] = task_name


def sync_job_tasks() -> list[str]:
    """Add a task for each planned job that has none yet (an analyst's job); returns the tasks added.

    A job no longer planned keeps its task, which is never due again (its condition asks the plan).
    """
    if scheduler is None:
        return []
    added = []
    for name, spec in scheduler.definitions.in_force.items():
        if spec.planned and name not in _job_tasks:
            _add_task(name, f"job_{name}", spec.description or f"the analyst's job {name}")
            added.append(_job_tasks[name])
    if added:
        log.info("scheduled the tasks %s", ", ".join(added))
    return added


@app.task(every("5 seconds"), name="sync_job_tasks", execution="async")
async def _sync_job_tasks() -> None:
    """Between two cycles (the event loop's turn), give each newly defined job its task."""
    sync_job_tasks()


# One task per scheduled job of the catalog: post_drawing_pipeline, maintenance_data_update, prediction_evaluation.
for _job in SCHEDULED_JOBS:
    add_job_task(_job)


def main() -> None:
    """Read settings, refuse to start on bad configuration, then serve until SIGTERM."""
    import sys

    from shiol_lib.errors import ShiolError
    from shiol_lib.scheduling.service import run_service
    from shiol_lib.settings import load_settings

    global scheduler
    configure_logging(None, level=logging.INFO)  # text to stderr until the settings say how to log
    try:
        settings = load_settings()
        configure_logging(settings, level=logging.INFO)
        scheduler = Scheduler(settings)
        sync_job_tasks()
        run_service(app, scheduler)
    except ShiolError as err:
        print(f"error: the scheduler cannot start: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
