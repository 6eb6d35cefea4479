"""The ``shiol`` command: gathers options, calls the library, prints, and exits with a stable code.

Exit codes (all of them in README.md): 0 success; 1 unexpected error; 2 usage or configuration error;
3 records rejected by validation (nothing from their batch written); 4 conflicts between a source and
the store (stored values kept); 5 the store could not be opened or stayed locked, or a command that
only reads found none; 10 ``update-data`` asked its network sources and none answered. The mapping of
errors to codes lives in :func:`cli_common.fail`.

``shiol --help``, ``shiol status`` and ``shiol schedule plan`` import neither pandas nor papermill nor
nbformat: the commands import what they need when they run (tests/cli/test_home_and_startup.py checks it).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from shiol_lib.cli import common as cli_common
from shiol_lib.cli import jobs as cli_jobs
from shiol_lib.cli import package_version
from shiol_lib.cli import research as cli_research
from shiol_lib.cli import runs as cli_runs
from shiol_lib.cli import schedule as cli_schedule
from shiol_lib.cli import service as cli_service
from shiol_lib.cli.lab import lab_command
from shiol_lib.domain.runs import ExitCode, StepStatus
from shiol_lib.errors import ConfigError, ShiolError
from shiol_lib.logs import configure_logging
from shiol_lib.settings import Settings, load_settings

if TYPE_CHECKING:
    from shiol_lib.store import Store


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"shiol {package_version()}")
        ctx.exit()


@click.group()
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version and exit.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """SHIOL+ Workbench: Powerball draw history, honest statistics, auditable runs."""
    try:
        ctx.obj = load_settings()
    except ConfigError as err:
        cli_common.fail(err)
    configure_logging(ctx.obj, level=logging.INFO if verbose else logging.WARNING)


@cli.command("init")
@click.pass_obj
def init_command(settings: Settings) -> None:
    """Create the store and the run archive under SHIOL_HOME (or the per-user default) and say where."""
    from shiol_lib.archive.folders import ensure_writable

    try:
        existed = settings.db_path.exists()
        store = cli_common.open_or_create_store(settings)
        ensure_writable(settings.runs_dir)
    except ShiolError as err:
        cli_common.fail(err)
    state = "already there" if existed else "created"
    click.echo(f"home:    {settings.home}")
    click.echo(f"store:   {store.path} ({state}, schema v{store.schema_version()})")
    click.echo(f"archive: {settings.runs_dir}")


@cli.command("update-data")
@click.option("--offline", is_flag=True, help="Use only the bundled snapshot; ask no network source.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def update_data_command(settings: Settings, offline: bool, as_json: bool) -> None:
    """Seed the store, fetch new drawings, backfill missing ones, and report."""
    import time

    from shiol_lib.ingest.update import update_from_settings
    from shiol_lib.jobs.progress import StreamProgress

    progress, started = StreamProgress(), time.monotonic()
    progress.task_started("update-data")
    try:
        report = update_from_settings(cli_common.open_or_create_store(settings), settings, offline=offline)
    except ShiolError as err:
        progress.task_ended("update-data", StepStatus.FAILED, time.monotonic() - started)
        cli_common.fail(err)
    status = (
        "rejected records"
        if report.rejected
        else "conflicts"
        if report.conflicts
        else "no source answered"
        if report.no_source_answered
        else StepStatus.SUCCESS
    )
    progress.task_ended("update-data", status, time.monotonic() - started)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.as_text())
    if report.rejected:
        click.echo(f"error: {len(report.rejected)} record(s) rejected; their batches were not written", err=True)
        sys.exit(ExitCode.REJECTED)
    if report.conflicts:
        click.echo(f"error: {len(report.conflicts)} conflict(s) with stored draws; stored values kept", err=True)
        sys.exit(ExitCode.CONFLICT)
    if report.no_source_answered:
        asked = ", ".join(report.source_asks())
        click.echo(f"error: no source answered ({asked}); nothing new could be learned", err=True)
        sys.exit(ExitCode.NO_SOURCE)


def status_dict(settings: Settings, store: Store, now: datetime) -> dict[str, Any]:
    """The facts ``shiol status`` shows, JSON-ready; instants ISO-8601 in New York time with a UTC twin."""
    from shiol_lib.domain.draw_calendar import draw_coverage, draw_instant, iso_et, iso_utc, next_draw
    from shiol_lib.jobs.liveness import find_dead_runs
    from shiol_lib.store.sources import last_answer_summary

    dates = store.draw_dates()
    upcoming = next_draw(now)
    coverage = draw_coverage(dates, now)
    return {
        "store": str(store.path),
        "snapshot": str(store.snapshot_path),
        "schema_version": store.schema_version(),
        "draws": {
            "count": len(dates),
            "first": dates[0].isoformat() if dates else None,
            "last": dates[-1].isoformat() if dates else None,
            "missing": [d.isoformat() for d in coverage.missing],
            "not_yet_fetched": len(coverage.unfetched),
            "lacking": coverage.lacking,
            "latest_held": coverage.until.isoformat(),
        },
        "next_draw": {
            "date": upcoming.isoformat(),
            "et": iso_et(draw_instant(upcoming)),
            "utc": iso_utc(draw_instant(upcoming)),
        },
        "sources": last_answer_summary(store, now),
        "dead_runs": [d.as_dict() for d in find_dead_runs(store, stale_s=settings.heartbeat_stale_s, now=now)],
        "now": iso_et(now),
        "now_utc": iso_utc(now),
    }


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def status_command(settings: Settings, as_json: bool) -> None:
    """Store path, draws held, expected drawings missing, and the next drawing."""
    try:
        store = cli_common.open_existing_store(settings)
        data = status_dict(settings, store, datetime.now(UTC))
    except ShiolError as err:
        cli_common.fail(err)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    draws = data["draws"]
    click.echo(f"store: {data['store']} (schema v{data['schema_version']})")
    click.echo(f"draws: {draws['count']} from {draws['first']} to {draws['last']}")
    click.echo(f"missing inside that range: {len(draws['missing'])} {' '.join(draws['missing'])}")
    click.echo(f"drawings held since the last stored one, not yet fetched: {draws['not_yet_fetched']}")
    click.echo(
        f"expected drawings the store lacks up to {draws['latest_held']}: {draws['lacking']} "
        f"({len(draws['missing'])} inside the range + {draws['not_yet_fetched']} not yet fetched)"
    )
    nxt = data["next_draw"]
    click.echo(f"next drawing: {nxt['date']} at {nxt['et']} ET ({nxt['utc']} UTC)")
    sources = data["sources"]
    since = sources["seconds_since_last_answer"]
    click.echo(
        "last source answer: never"
        if since is None
        else f"last source answer: {_ago(since)} ago ({sources['last_answered_at_utc']} UTC)"
    )
    for dead in data["dead_runs"]:
        click.echo(
            f"dead run: {dead['job']} run {dead['run_id']} (pid {dead['pid']} on {dead['host']}): "
            f"{dead['reason']}; last heartbeat {dead['heartbeat_at_utc']} UTC (not closed yet)"
        )


def _ago(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``40 s``: how long, in words a person reads at a glance."""
    whole = int(seconds)
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min" if minutes else f"{whole} s"


cli.add_command(cli_runs.run_command)
cli.add_command(cli_runs.rerun_command)
cli.add_command(cli_runs.runs_group)
cli.add_command(cli_schedule.schedule_group)
cli.add_command(cli_schedule.deadletters_command)
cli.add_command(cli_service.service_group)
cli.add_command(cli_research.research_group)
cli.add_command(cli_jobs.jobs_group)
cli.add_command(lab_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shiol")


if __name__ == "__main__":
    main()
