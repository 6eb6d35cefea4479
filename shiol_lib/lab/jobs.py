"""The Lab's job handlers: the jobs, one job, the plan, a notebook's parameters, and the actions.

Actions go through the CLI's library paths: :func:`~shiol_lib.jobs.definitions.edits.add_job` and
:func:`~shiol_lib.jobs.definitions.edits.set_paused` edit ``jobs.toml`` (validated whole, written atomically),
and "run now" starts ``shiol run NAME`` detached (one instance per job, archive, ledger: all of it).
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web

from shiol_lib.errors import ConfigError, JobsFileError, ShiolError
from shiol_lib.lab import records
from shiol_lib.lab.add_job import job_table, problems_of
from shiol_lib.lab.common import ApiError, BadRequest, Conflict, NotFound, ShiolHandler, answers, start_detached
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    from shiol_lib.jobs.definitions.spec import JobSpec


class Unavailable(ApiError):
    """The workbench cannot answer now: no store yet, a schedule that cannot be planned (503)."""

    status = 503


def _jobs(settings: Settings) -> dict[str, JobSpec]:
    from shiol_lib.jobs.definitions import effective_jobs

    try:
        return effective_jobs(settings)
    except JobsFileError as err:
        raise Conflict(
            f"the jobs file {settings.jobs_path} has problems; fix them", None, problems=problems_of(err)
        ) from err
    except ShiolError as err:
        raise Unavailable(str(err)) from err


def _records(settings: Settings, names: list[str] | None = None) -> list[dict[str, Any]]:
    jobs = _jobs(settings)
    if names is not None:
        missing = [n for n in names if n not in jobs]
        if missing:
            raise NotFound(f"unknown job {missing[0]!r}; known jobs: {', '.join(jobs)}", "name")
        jobs = {n: jobs[n] for n in names}
    with records.reader(settings) as conn:
        return records.job_records(settings, jobs, conn, datetime.now(UTC))


class JobsHandler(ShiolHandler):
    """``GET jobs``: every job; ``POST jobs`` body ADD: add a job to ``jobs.toml`` (201 the job)."""

    @tornado.web.authenticated
    @answers
    async def get(self) -> None:
        """The jobs."""
        self.answer({"jobs": await self.off_loop(_records, self.settings_)})

    @tornado.web.authenticated
    @answers
    async def post(self) -> None:
        """Add the job."""
        table = job_table(self.settings_, self.root, self.body())
        spec = await self.off_loop(_add, self.settings_, table)
        self.answer(records.job_record(spec, datetime.now(UTC), None, running=False), 201)


def _add(settings: Settings, table: dict[str, Any]) -> JobSpec:
    from shiol_lib.jobs.definitions.edits import add_job

    try:
        return add_job(settings, table)
    except JobsFileError as err:
        raise BadRequest(f"job {table.get('name')!r} was not added: {err}", None, problems=problems_of(err)) from err
    except ShiolError as err:
        raise BadRequest(f"job {table.get('name')!r} was not added: {err}") from err


class CheckHandler(ShiolHandler):
    """``POST jobs/check`` body ADD: the problems ``shiol jobs check`` would find once added; writes nothing."""

    @tornado.web.authenticated
    @answers
    async def post(self) -> None:
        """The problems (an empty list: the job is valid)."""
        table = job_table(self.settings_, self.root, self.body())
        self.answer({"problems": await self.off_loop(_check, self.settings_, table)})


def _check(settings: Settings, table: dict[str, Any]) -> list[dict[str, Any]]:
    from shiol_lib.jobs.definitions.edits import check_new_job

    try:
        check_new_job(settings, table)
    except JobsFileError as err:
        return problems_of(err)
    return []


class JobHandler(ShiolHandler):
    """``GET jobs/<name>``: one job."""

    @tornado.web.authenticated
    @answers
    async def get(self, name: str) -> None:
        """The job."""
        self.answer((await self.off_loop(_records, self.settings_, [name]))[0])


class RunNowHandler(ShiolHandler):
    """``POST jobs/<name>/run``: start ``shiol run NAME`` now (409 when paused or in flight)."""

    @tornado.web.authenticated
    @answers
    async def post(self, name: str) -> None:
        """Start the run."""
        self.body()
        job = (await self.off_loop(_records, self.settings_, [name]))[0]
        if job["paused"]:
            raise Conflict(f"job {name} is paused; resume it first (Jobs panel or 'shiol jobs resume {name}')", "name")
        if job["running"]:
            raise Conflict(f"job {name} is already running; wait for its run to end", "name")
        start_detached(self.settings_, "run", name)
        self.answer({"started": True, "job": name}, 202)


class PauseHandler(ShiolHandler):
    """``POST jobs/<name>/pause`` (or ``resume``): set the job's ``paused`` in ``jobs.toml``; 200 the job."""

    paused = True

    @tornado.web.authenticated
    @answers
    async def post(self, name: str) -> None:
        """Pause (resume) the job."""
        self.body()
        await self.off_loop(_set_paused, self.settings_, name, self.paused)
        self.answer((await self.off_loop(_records, self.settings_, [name]))[0])


class ResumeHandler(PauseHandler):
    """``POST jobs/<name>/resume``."""

    paused = False


def _set_paused(settings: Settings, name: str, paused: bool) -> None:
    from shiol_lib.jobs.definitions.edits import set_paused

    if name not in _jobs(settings):
        raise NotFound(f"unknown job {name!r}; the Jobs panel lists the jobs", "name")
    try:
        set_paused(settings, name, paused)
    except JobsFileError as err:
        raise Conflict(str(err), "name", problems=problems_of(err)) from err


class PlanHandler(ShiolHandler):
    """``GET plan``: what ``shiol schedule plan --json`` prints (next slots, what is due, missed, alerts)."""

    @tornado.web.authenticated
    @answers
    async def get(self) -> None:
        """The plan now."""
        self.answer(await self.off_loop(_plan, self.settings_))


def _plan(settings: Settings) -> dict[str, Any]:
    from shiol_lib.scheduling.scheduler import Scheduler

    if not settings.db_path.exists():
        raise Unavailable(f"no store at {settings.db_path} yet; run 'shiol update-data' (or the pipeline) first")
    try:
        return Scheduler(settings).plan(datetime.now(UTC)).as_dict()
    except ConfigError as err:
        raise Unavailable(f"the schedule cannot be planned: {err}") from err


class ParametersHandler(ShiolHandler):
    """``GET notebooks/parameters?path=P``: the parameters a notebook's ``parameters`` cell declares."""

    @tornado.web.authenticated
    @answers
    async def get(self) -> None:
        """The parameters."""
        from shiol_lib.lab.add_job import notebook_under

        text = self.get_query_argument("path", None)
        if not text:
            raise BadRequest("give the notebook as ?path=PATH (relative to the Lab's folder)", "path")
        path = notebook_under(self.root, text, "path")
        if not path.is_file():
            raise NotFound(f"notebook {text!r} does not exist under {self.root}", "path")
        self.answer({"parameters": await self.off_loop(_parameters, path, text)})


def _parameters(path: Path, text: str) -> list[dict[str, Any]]:
    from shiol_lib.execution.parameters import read_parameters

    try:
        declared = read_parameters(path)
    except (ShiolError, ValueError, OSError) as err:
        raise BadRequest(f"{text}: {err}", "path") from err
    return [
        {
            "name": p.name,
            "type": p.type_name if p.type_name not in ("", "None") else None,
            "default": _literal(p.default),
            "help": p.help,
        }
        for p in declared.values()
    ]


def _literal(source: str) -> Any:
    """A default's Python literal as a JSON value (None when it is not a plain literal)."""
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, (str, int, float, bool, list, dict)) else None


NAME = r"([^/]+)"


def handlers(base: str) -> list[tuple[str, type[ShiolHandler]]]:
    """The job routes under ``base`` (``jobs/check`` before ``jobs/<name>``)."""
    return [
        (f"{base}/jobs", JobsHandler),
        (f"{base}/jobs/check", CheckHandler),
        (f"{base}/jobs/{NAME}", JobHandler),
        (f"{base}/jobs/{NAME}/run", RunNowHandler),
        (f"{base}/jobs/{NAME}/pause", PauseHandler),
        (f"{base}/jobs/{NAME}/resume", ResumeHandler),
        (f"{base}/plan", PlanHandler),
        (f"{base}/notebooks/parameters", ParametersHandler),
    ]
