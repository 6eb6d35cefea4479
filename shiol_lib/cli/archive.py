"""``shiol runs verify|prune|missed``: check the archive, prune it, list what the scheduler missed."""

from __future__ import annotations

import json
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

import click

from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.runs import ExitCode
from shiol_lib.errors import (
    ShiolError,
)
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    from shiol_lib.store.monitoring import MissedSlot

from shiol_lib.cli.common import JOB_NAMES, MISSED_KINDS, fail, open_existing_store, require_store


@click.command("verify")
@click.pass_obj
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def verify_command(settings: Settings, as_json: bool) -> None:
    """Cross-check the ledger, every archived file and the store's anchor; exit 8 on any problem."""
    from shiol_lib.archive.verify import verify_archive
    from shiol_lib.store import open_store
    from shiol_lib.store import runs as run_table

    try:
        require_store(settings)
        store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
        result = verify_archive(settings.runs_dir, anchor=run_table.ledger_anchor(store),
                                runs=run_table.archived_runs(store), key=settings.ledger_key)
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(json.dumps({"intact": result.intact, "entries": result.entries, "runs": result.runs,
                               "files": result.files, "signatures_checked": result.signed,
                               "problems": [p.__dict__ for p in result.problems]}, indent=2))
    else:
        for problem in result.problems:
            click.echo(problem.as_text(), err=True)
        if result.intact:
            signed = "signatures checked" if result.signed else "signatures not checked (no SHIOL_LEDGER_KEY)"
            click.echo(f"archive intact: {result.entries} ledger entries, {result.runs} runs, {result.files} files "
                       f"match their hashes; the store's anchor matches the ledger head; {signed}")
        else:
            click.echo(f"archive NOT intact: {len(result.problems)} problem(s)", err=True)
    if not result.intact:
        sys.exit(ExitCode.MISMATCH)


@click.command("prune")
@click.option("--keep-days", type=click.IntRange(min=0), required=True,
              help="Keep heavy files of runs younger than this many days (0 or more).")
@click.pass_obj
def prune_command(settings: Settings, keep_days: int) -> None:
    """Delete notebooks, HTML and logs of old runs; keep manifests and the ledger."""
    from shiol_lib.archive import ledger
    from shiol_lib.archive.retention import prune_runs
    from shiol_lib.jobs.catalog import performance_jobs
    from shiol_lib.reports import dashboard as run_index
    from shiol_lib.store import open_store
    from shiol_lib.store import runs as run_table

    try:
        store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
        pruned = prune_runs(settings.runs_dir, keep_days=keep_days, key=settings.ledger_key)
        head = ledger.head(settings.runs_dir)
        if pruned and head is not None:
            run_table.anchor_ledger(store, (head.seq, head.hash))
        run_index.write_index(settings.runs_dir, retry_backoff_s=settings.retry_backoff_s,
                              performance_jobs=performance_jobs(), **run_index.store_context(store))
    except ShiolError as err:
        fail(err)
    click.echo(f"pruned {len(pruned)} run folder(s); manifests and ledger kept")


@click.command("missed")
@click.option("--job", type=click.Choice(JOB_NAMES), help="Only this job.")
@click.option("--kind", type=click.Choice(MISSED_KINDS), help="Only missed slots or only missed drawings.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="ISO-8601 instants with their UTC offset.")
@click.pass_obj
def missed_command(settings: Settings, job: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """Slots and drawings the scheduler recorded as missed (not run), newest slot first, in ET and UTC."""
    from shiol_lib.store.monitoring import missed_slots

    try:
        rows = missed_slots(open_existing_store(settings), job=job, kind=kind, limit=limit)
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(json.dumps([missed_dict(m) for m in rows], indent=2))
        return
    if not rows:
        click.echo("no missed slots or drawings recorded")
        return
    click.echo(f"{'kind':<5} {'job':<12} {'slot (ET)':<21} {'slot (UTC)':<20} {'drawing':<10}  recorded (UTC)")
    for m in rows:
        slot_et = f"{m.slot.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}"
        slot_utc = f"{m.slot.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        drawing = m.draw_date.isoformat() if m.draw_date else "-"
        recorded = f"{m.recorded_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        click.echo(f"{m.kind:<5} {m.job:<12} {slot_et:<21} {slot_utc:<20} {drawing:<10}  {recorded}")


def missed_dict(missed: MissedSlot) -> dict[str, Any]:
    """A missed slot or drawing, JSON-ready: the slot in ET and in UTC, both ISO-8601 with their offset."""
    return {
        "job": missed.job,
        "kind": missed.kind,
        "draw_date": missed.draw_date.isoformat() if missed.draw_date else None,
        "slot_et": missed.slot.astimezone(NEW_YORK).isoformat(),
        "slot_utc": missed.slot.astimezone(UTC).isoformat(),
        "recorded_at": missed.recorded_at.astimezone(UTC).isoformat(),
    }
