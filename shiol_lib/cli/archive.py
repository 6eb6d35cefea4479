"""``shiol runs verify|witness|pages|prune|missed``: check, witness, re-page and prune the archive; list misses."""

from __future__ import annotations

import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.runs import ExitCode, RunStatus
from shiol_lib.errors import ArchiveError, ConfigError, ShiolError
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    from shiol_lib.store import Store
    from shiol_lib.store.monitoring import MissedSlot

from shiol_lib.cli.common import JOB_NAMES, MISSED_KINDS, fail, open_existing_store, require_store


@click.command("verify")
@click.pass_obj
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--witness",
    "witness_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A witness kept elsewhere ('shiol runs witness'): fail unless the ledger still reaches it.",
)
@click.option(
    "--since-last",
    is_flag=True,
    help="Hash again only files changed since the last verification found the archive intact (by size, inode, "
    "mtime and ctime); everything else is checked as in full. Without a recorded verification: a full one.",
)
def verify_command(settings: Settings, as_json: bool, witness_file: Path | None, since_last: bool) -> None:
    """Cross-check the ledger, every byte of runs/, the store's rows and anchor; exit 8 on any problem."""
    from shiol_lib.archive import verify_state, witness
    from shiol_lib.archive.verify import verify_archive
    from shiol_lib.store import open_store
    from shiol_lib.store import predictions as prediction_table
    from shiol_lib.store import runs as run_table

    try:
        require_store(settings)
        seen = witness.read(witness_file) if witness_file is not None else None
        store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
        state = verify_state.state_path(settings.db_path)
        previous = verify_state.load(state, settings.runs_dir, key=settings.ledger_key) if since_last else None
        hashes = previous or verify_state.FileHashes(settings.runs_dir)
        with store.held():  # the store's reads through one connection
            runs = run_table.archived_runs(store)
            anchor, in_flight = run_table.ledger_anchor(store), in_flight_runs(settings, store)
            outputs = hashes.store_outputs(
                sorted(runs),
                prediction_table.output_digests(store),
                lambda ids: prediction_table.all_output_hashes(store, ids),
            )
        result = verify_archive(
            settings.runs_dir,
            anchor=anchor,
            runs=runs,
            key=settings.ledger_key,
            in_flight=in_flight,
            outputs=outputs,
            witness=seen,
            hashes=hashes,
        )
        unchanged = (
            previous is not None
            and not hashes.hashed
            and not hashes.outputs_hashed
            and hashes.seen.keys() == previous.known.keys()
        )
        if result.intact and not unchanged:  # an unchanged archive leaves the recorded state as true as it was
            try:
                verify_state.save(state, hashes, key=settings.ledger_key)
            except ArchiveError as err:  # the archive is intact; only the next --since-last is a full one
                click.echo(f"warning: {err}; the next --since-last verifies in full", err=True)
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "intact": result.intact,
                    "entries": result.entries,
                    "runs": result.runs,
                    "files": result.files,
                    "signatures_checked": result.signed,
                    "witness_checked": seen is not None,
                    "since_last": previous is not None,
                    "files_hashed": hashes.hashed,
                    "files_unchanged": hashes.reused,
                    "problems": [p.__dict__ for p in result.problems],
                },
                indent=2,
            )
        )
    else:
        for problem in result.problems:
            click.echo(problem.as_text(), err=True)
        if result.intact:
            signed = "signatures checked" if result.signed else "signatures not checked (no SHIOL_LEDGER_KEY)"
            reached = f"; it reaches the witnessed entry {seen.seq}" if seen else ""
            if previous is not None:
                reached += f"; {hashes.hashed} file(s) hashed, {hashes.reused} unchanged since the last verification"
            elif since_last:
                reached += "; no earlier verification recorded: every file hashed"
            click.echo(
                f"archive intact: {result.entries} ledger entries, {result.runs} runs, {result.files} files "
                f"match their hashes; the store's anchor matches the ledger head{reached}; {signed}"
            )
        else:
            click.echo(f"archive NOT intact: {len(result.problems)} problem(s)", err=True)
    if not result.intact:
        sys.exit(ExitCode.MISMATCH)


@click.command("witness")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the witness to this file (keep it off this machine) instead of printing it.",
)
@click.pass_obj
def witness_command(settings: Settings, output: Path | None) -> None:
    """Export the signed ledger head; 'shiol runs verify --witness FILE' fails if history is rolled back."""
    from shiol_lib.archive import ledger, witness
    from shiol_lib.store import runs as run_table

    try:
        head = ledger.head(settings.runs_dir)
        if head is None:
            raise ArchiveError(f"the ledger in {settings.runs_dir} is empty: there is no history to witness yet")
        anchor = run_table.ledger_anchor(open_existing_store(settings))
        if anchor != (head.seq, head.hash):
            click.echo(
                f"error: the ledger ends at entry {head.seq} but the store anchored "
                f"{f'entry {anchor[0]}' if anchor else 'none'}; run 'shiol runs verify' first",
                err=True,
            )
            sys.exit(ExitCode.MISMATCH)
        text = witness.make(head.seq, head.hash, settings.ledger_key).to_json() + "\n"
        if output is not None:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as err:
                raise ArchiveError(f"could not write the witness {output}: {err.strerror}") from err
    except ShiolError as err:
        fail(err)
    if not settings.ledger_key:
        click.echo(
            "note: unsigned (no SHIOL_LEDGER_KEY): it still shows a rollback, but cannot prove it came "
            "from this workbench",
            err=True,
        )
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"witness of ledger entry {head.seq} written to {output}; keep a copy off this machine")


def in_flight_runs(settings: Settings, store: Store) -> set[str]:
    """Runs whose process is alive on this host and whose heartbeat is fresh (verify excuses only their folders)."""
    from shiol_lib.store.jobs import LockHolder, running_runs

    now, host = datetime.now(UTC), socket.gethostname()
    alive: set[str] = set()
    rows = running_runs(store)
    if not rows:
        return alive  # nothing running: the liveness checks (and their imports) are not needed
    from shiol_lib.jobs.liveness import job_is_alive

    for row in rows:
        if (
            row.status != RunStatus.RUNNING
            or row.host != host
            or row.pid is None
            or row.heartbeat_at is None
            or (now - row.heartbeat_at).total_seconds() > settings.heartbeat_stale_s
        ):
            continue
        holder = LockHolder(row.job, row.run_id, row.pid, row.host, row.heartbeat_at)
        if job_is_alive(holder, stale_s=settings.heartbeat_stale_s, now=now):
            alive.add(row.run_id)
    return alive


@click.command("prune")
@click.option(
    "--keep-days",
    type=click.IntRange(min=0),
    help="Keep heavy files of runs younger than this many days (0 or more), for every job without its own "
    "keep_days (jobs file); without it, only jobs with keep_days are pruned.",
)
@click.pass_obj
def prune_command(settings: Settings, keep_days: int | None) -> None:
    """Delete notebooks, HTML and logs of old runs (each job's keep_days); keep manifests and the ledger."""
    from shiol_lib.archive import ledger
    from shiol_lib.archive.retention import prune_runs
    from shiol_lib.jobs.catalog import performance_jobs
    from shiol_lib.jobs.definitions import effective_jobs
    from shiol_lib.jobs.definitions.live import job_pages
    from shiol_lib.reports import dashboard as run_index
    from shiol_lib.store import open_store
    from shiol_lib.store import runs as run_table

    try:
        jobs = effective_jobs(settings)
        per_job = {name: spec.keep_days for name, spec in jobs.items() if spec.keep_days is not None}
        if keep_days is None and not per_job:
            raise ConfigError(
                "nothing to prune by: give --keep-days N, or set keep_days on a job in the jobs file "
                f"({settings.jobs_path})"
            )
        store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
        pruned = prune_runs(settings.runs_dir, keep_days=keep_days, per_job=per_job, key=settings.ledger_key)
        head = ledger.head(settings.runs_dir)
        if pruned and head is not None:
            run_table.anchor_ledger(store, (head.seq, head.hash))
        run_index.write_index(
            settings.runs_dir,
            jobs=job_pages(settings),
            retry_backoff_s=settings.retry_backoff_s,
            performance_jobs=performance_jobs(),
            ledger_key=settings.ledger_key,
            **run_index.store_context(store),
        )
    except ShiolError as err:
        fail(err)
    kept = ", ".join(f"{job} {days} days" for job, days in sorted(per_job.items()))
    rule = f"--keep-days {keep_days}" if keep_days is not None else "no default"
    click.echo(f"pruned {len(pruned)} run folder(s) ({rule}{'; ' + kept if kept else ''}); manifests and ledger kept")


@click.command("pages")
@click.pass_obj
def pages_command(settings: Settings) -> None:
    """Rewrite runs/index.html and every run page from the manifests, and record their hashes."""
    from shiol_lib.jobs.definitions.live import job_pages
    from shiol_lib.reports import dashboard as run_index

    try:
        store = open_existing_store(settings)
        path = run_index.write_index(
            settings.runs_dir,
            jobs=job_pages(settings),
            retry_backoff_s=settings.retry_backoff_s,
            ledger_key=settings.ledger_key,
            **run_index.store_context(store),
        )
    except ShiolError as err:
        fail(err)
    click.echo(f"pages rewritten and recorded: {path}")


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
