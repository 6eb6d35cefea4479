"""``shiol jobs``: list, show and check the job definitions, and edit the analyst's ``jobs.toml``.

A definitions problem (:class:`~shiol_lib.errors.JobsFileError`) prints one line per problem (file,
job, field, reason) and exits 2. The commands import the definitions (papermill) when they run.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from shiol_lib.cli import common as cli_common
from shiol_lib.errors import JobsFileError, RunnerError, ShiolError
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    from shiol_lib.jobs.definitions import JobSpec

EXIT_USAGE = 2


@click.group("jobs")
def jobs_group() -> None:
    """The jobs (built-in and the analyst's jobs.toml): list, show, check, add, remove, pause, resume."""


@jobs_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def list_command(settings: Settings, as_json: bool) -> None:
    """Every job: schedule, next run (ET and UTC), paused, and its last result when a store exists."""
    from shiol_lib.lab.records import job_records

    jobs = _load(settings)
    try:
        if settings.db_path.exists():  # listing never creates a store
            with cli_common.open_existing_store(settings).connect() as conn:
                rows = job_records(settings, jobs, conn, datetime.now(UTC))
        else:
            rows = job_records(settings, jobs, None, datetime.now(UTC))
    except ShiolError as err:
        cli_common.fail(err)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        nxt = f"{row['next_run']} ET ({row['next_run_utc']} UTC)" if row["next_run"] else "-"
        last = row["last_result"]
        last_text = f"{last['status']} at {last['started_at']}" if last else "none"
        paused = "  PAUSED" if row["paused"] else ""
        click.echo(f"{row['name']}: {row['schedule']['text']}; next run {nxt}; last result {last_text}{paused}")


@jobs_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def show_command(settings: Settings, name: str, as_json: bool) -> None:
    """One job's whole definition (secrets by name only) and its next run."""
    jobs = _load(settings)
    if name not in jobs:
        _fail_usage(f"unknown job {name!r}; known jobs: {', '.join(jobs)}")
    from shiol_lib.lab.records import next_fields

    data = {**jobs[name].as_dict(), **next_fields(jobs[name], datetime.now(UTC))}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        click.echo(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


@jobs_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def check_command(settings: Settings, file: Path | None) -> None:
    """Validate a jobs file (default: SHIOL_JOBS_FILE or jobs.toml under SHIOL_HOME); exit 2 on any problem."""
    path = file or settings.jobs_path
    if file is not None and not file.is_file():
        _fail_usage(f"{file}: no such file")
    jobs = _load(settings, path)
    own = [spec for spec in jobs.values() if spec.source == str(path)]
    state = "" if path.exists() else " (no file: the built-in jobs only)"
    click.echo(f"ok: {path}{state}: {len(jobs)} job(s) in force, {len(own)} defined or changed there")


@jobs_group.command("add")
@click.argument("notebook")
@click.option("--name", required=True, help="The job's name (a slug: lowercase letters, digits, - and _).")
@click.option("--cron", help="5-field cron expression of its slots.")
@click.option("--timezone", help="Timezone of the cron (default America/New_York).")
@click.option("--after-drawing", "after_drawing", metavar="DELAY", help="Run this long after each drawing (30m).")
@click.option("--manual", is_flag=True, help="Never scheduled: run by hand only.")
@cli_common.parameter_option("A notebook parameter (repeatable).")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="VAR",
    help="An environment variable handed to the kernel, never archived (repeatable).",
)
@click.option("--description", default="", help="What the job is for.")
@click.pass_obj
def add_command(
    settings: Settings,
    notebook: str,
    name: str,
    cron: str | None,
    timezone: str | None,
    after_drawing: str | None,
    manual: bool,
    parameters: tuple[tuple[str, str], ...],
    secrets: tuple[str, ...],
    description: str,
) -> None:
    """Add a job for NOTEBOOK to the jobs file, validated together with the file, keeping its comments."""
    from shiol_lib.jobs.definitions.edits import add_job, new_job_table, notebook_entry
    from shiol_lib.lab.records import next_fields

    if [bool(cron), bool(after_drawing), manual].count(True) != 1:
        _fail_usage("give exactly one of --cron EXPR, --after-drawing DELAY or --manual")
    if timezone and not cron:
        _fail_usage("--timezone goes with --cron")
    schedule: Any = "manual"
    if cron:
        schedule = {"cron": cron, **({"timezone": timezone} if timezone else {})}
    elif after_drawing:
        schedule = {"after_drawing": int(after_drawing) if after_drawing.isdigit() else after_drawing}
    entry, resolved = notebook_entry(settings, notebook)
    values = _typed_parameters(resolved, parameters) if parameters else None
    table = new_job_table(name, entry, schedule, description=description, parameters=values, secrets=list(secrets))
    try:
        spec = add_job(settings, table)
    except JobsFileError as err:
        _fail_problems(err)
    except ShiolError as err:
        cli_common.fail(err)
    nxt = next_fields(spec, datetime.now(UTC))
    when = f"; next run {nxt['next_run']} ET ({nxt['next_run_utc']} UTC)" if nxt["next_run"] else ""
    click.echo(f"added job {spec.name} to {settings.jobs_path}: {spec.schedule.describe()}{when}")


@jobs_group.command("remove")
@click.argument("name")
@click.pass_obj
def remove_command(settings: Settings, name: str) -> None:
    """Remove a job from the jobs file (its archived runs stay)."""
    from shiol_lib.jobs.definitions.edits import remove_job

    _edit(lambda: remove_job(settings, name))
    click.echo(f"removed job {name} from {settings.jobs_path}")


@jobs_group.command("pause")
@click.argument("name")
@click.pass_obj
def pause_command(settings: Settings, name: str) -> None:
    """Pause a job (built-in ones too): the scheduler plans no run of it until it is resumed."""
    from shiol_lib.jobs.definitions.edits import set_paused

    _edit(lambda: set_paused(settings, name, True))
    click.echo(f"paused job {name} ({settings.jobs_path})")


@jobs_group.command("resume")
@click.argument("name")
@click.pass_obj
def resume_command(settings: Settings, name: str) -> None:
    """Resume a paused job."""
    from shiol_lib.jobs.definitions.edits import set_paused

    _edit(lambda: set_paused(settings, name, False))
    click.echo(f"resumed job {name} ({settings.jobs_path})")


@jobs_group.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@cli_common.parameter_option("A parameter for every notebook of the job that declares it (over the definition's).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def run_job_command(ctx: click.Context, name: str, parameters: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """Run job NAME now, by hand (trigger manual), with every guarantee of a scheduled run; as `shiol run NAME`."""
    from shiol_lib.cli.runs import run_command

    ctx.invoke(run_command, job=name, parameters=parameters, as_json=as_json)


def _load(settings: Settings, path: Path | None = None) -> dict[str, JobSpec]:
    from shiol_lib.jobs.definitions import effective_jobs

    try:
        return effective_jobs(settings, file=path)
    except JobsFileError as err:
        _fail_problems(err)
    except ShiolError as err:
        cli_common.fail(err)


def _typed_parameters(notebook: Path | None, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``-p`` values typed by the notebook's declarations (the text as given when it cannot be read)."""
    from shiol_lib.cli.runs import parse_parameters

    if notebook is not None:
        try:
            return parse_parameters(notebook, pairs)
        except RunnerError:
            pass  # no parameters cell, unreadable value: the validation names it
    return dict(pairs)


def _edit(action: Any) -> None:
    try:
        action()
    except JobsFileError as err:
        _fail_problems(err)
    except ShiolError as err:
        cli_common.fail(err)


def _fail_problems(err: JobsFileError) -> NoReturn:
    for problem in err.problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(EXIT_USAGE)


def _fail_usage(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)
