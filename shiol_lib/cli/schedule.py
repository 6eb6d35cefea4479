"""``shiol schedule plan|run`` and ``shiol deadletters``: the scheduler from the command line.

Exit code 2 also covers a schedule that cannot start (bad cron expression, store or archive unusable).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime

import click

from shiol_lib.cli.common import fail, require_store
from shiol_lib.domain.draw_calendar import et_and_utc
from shiol_lib.errors import ShiolError
from shiol_lib.settings import Settings


@click.group("schedule")
def schedule_group() -> None:
    """Plan and run the scheduled jobs (America/New_York)."""


@schedule_group.command("plan")
@click.option("--at", "at", help="The instant to plan for (ISO-8601 with offset; default now).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plan_command(settings: Settings, at: str | None, as_json: bool) -> None:
    """For each job: the next slot, what is due now and why, and what is missed. Changes nothing."""
    from shiol_lib.scheduling.scheduler import Scheduler

    try:
        instant = _instant(at)
        scheduler = Scheduler(settings)  # a bad schedule is a configuration error (2) before a missing store
        require_store(settings)
        plan = scheduler.plan(instant)
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(json.dumps(plan.as_dict(), indent=2))
        return
    click.echo(f"plan at {et_and_utc(plan.at)}")
    if plan.draws is not None:
        click.echo(f"  draws: {plan.draws.as_text()}")
    for job, slot in plan.next.items():
        click.echo(f"  next {job:<12} {et_and_utc(slot)}")
    for due in plan.due:
        draw = f" drawing {due.draw_date}" if due.draw_date else ""
        click.echo(f"  DUE  {due.job:<12} slot {et_and_utc(due.slot)} ({due.reason}, attempt {due.attempt}){draw}")
    for missed in plan.missed:
        draw = f" drawing {missed.draw_date}" if missed.draw_date else ""
        click.echo(f"  missed {missed.kind:<5} {missed.job:<12} slot {et_and_utc(missed.slot)}{draw}")
    for dead in plan.dead_runs:
        click.echo(f"  DEAD {dead.as_text()} (closed as crashed by the next run or the scheduler)")
    for alert in plan.alerts:
        click.echo(f"  ALERT {alert}")


def _instant(at: str | None) -> datetime:
    if not at:
        return datetime.now(UTC)
    try:
        instant = datetime.fromisoformat(at)
    except ValueError as err:
        raise click.BadParameter(f"{at!r} is not ISO-8601 (e.g. 2024-07-01T23:29:00-04:00)", param_hint="--at") from err
    if instant.tzinfo is None:
        raise click.BadParameter(f"{at!r} has no UTC offset; add one, e.g. -04:00", param_hint="--at")
    return instant


@schedule_group.command("run")
@click.pass_obj
def run_scheduler_command(settings: Settings) -> None:
    """Start the scheduler (``shiol_lib.scheduling.app``) with its health API; SIGTERM stops it gracefully."""
    # exec, not a call: the scheduler is this process (systemd's main PID), started fresh, no click state
    os.execv(sys.executable, [sys.executable, "-m", "shiol_lib.scheduling.app"])


@click.command("deadletters")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved dead letters.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def deadletters_command(settings: Settings, include_resolved: bool, as_json: bool) -> None:
    """Runs that failed every attempt: error class, notebook and cell, and the command that re-runs them."""
    from shiol_lib.scheduling.plans import json_ready
    from shiol_lib.scheduling.scheduler import Scheduler
    from shiol_lib.store import jobs as job_table

    try:
        require_store(settings)
        letters = job_table.list_dead_letters(Scheduler(settings).store(), include_resolved=include_resolved)
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(json.dumps(json_ready(letters), indent=2))
        return
    if not letters:
        click.echo("no open dead letters")
    for d in letters:
        state = f"resolved by {d.resolved_by_run_id}" if d.resolved_at else "open"
        slot = et_and_utc(d.slot) if d.slot is not None else "-"
        click.echo(f"{d.dead_letter_id}  {d.job:<12} attempts {d.attempts}  {d.error_class}  {state}")
        click.echo(f"    slot {slot}" + (f"  drawing {d.draw_date}" if d.draw_date else ""))
        if d.notebook:
            click.echo(f"    failed in {d.notebook} cell {d.failed_cell}: {d.error}")
        click.echo(f"    re-run: {d.rerun_command}" + (f"  # --slot is {et_and_utc(d.slot)}" if d.slot else ""))
    sys.exit(0)
