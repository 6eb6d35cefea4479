"""The workbench's runs and jobs as JSON records, one builder for the CLI and the Lab's REST handlers.

``shiol jobs list --json`` and ``shiol runs show`` print them; the handlers answer them: they never drift.

Every reader takes a DuckDB connection: the live store's (the CLI) or the reader snapshot's (the Lab
server, :func:`reader`), and the settings for the archive. Nothing here writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiol_lib.archive import folders as archive
from shiol_lib.archive.manifest import Manifest
from shiol_lib.archive.pages import PAGE
from shiol_lib.domain.draw_calendar import iso_et, iso_utc
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError, ShiolError
from shiol_lib.settings import Settings
from shiol_lib.store import runs as run_table

if TYPE_CHECKING:
    import duckdb

    from shiol_lib.jobs.definitions.spec import JobSpec

_DONE_STEPS = frozenset(StepStatus) - {StepStatus.PENDING, StepStatus.RUNNING}


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A read-only connection to the published reader snapshot (None before any store exists)."""
    from shiol_lib.store.snapshot import connect_snapshot

    if not Path(settings.snapshot_path).exists():
        yield None
        return
    conn = connect_snapshot(settings.snapshot_path)
    try:
        yield conn
    finally:
        conn.close()


# --- jobs ---------------------------------------------------------------------------------------


def next_run(spec: JobSpec, now: datetime) -> datetime | None:
    """The job's next slot after ``now``, as the scheduler plans it (None: manual or paused)."""
    from shiol_lib.domain.slots import next_slot

    if not spec.planned:
        return None
    return next_slot(spec.schedule.cron_spec(), now)


def next_fields(spec: JobSpec, now: datetime) -> dict[str, str | None]:
    """``next_run`` (ISO, New York offset) and ``next_run_utc`` of a job (both None when it has none)."""
    at = next_run(spec, now)
    return {"next_run": iso_et(at) if at else None, "next_run_utc": iso_utc(at) if at else None}


def job_record(spec: JobSpec, now: datetime, last: run_table.RunRow | None, *, running: bool) -> dict[str, Any]:
    """One job, JSON-ready: its definition (secrets by name), schedule, next run, last result, state."""
    data = spec.as_dict()
    return {
        "name": spec.name,
        "description": spec.description,
        "builtin": spec.builtin,
        "schedule": {**data["schedule"], "text": spec.schedule.describe()},
        **next_fields(spec, now),
        "last_result": None
        if last is None
        else {"run_id": last.run_id, "status": last.status, "started_at": iso_utc(last.started_at)},
        "paused": spec.paused,
        "running": running,
        "source": spec.source,
        "notebooks": data["notebooks"],
        "parameters": data["parameters"],
        "secrets": data["secrets"],
    }


def job_records(
    settings: Settings, jobs: Mapping[str, JobSpec], conn: duckdb.DuckDBPyConnection | None, now: datetime
) -> list[dict[str, Any]]:
    """Every job's record; ``conn`` (None: no store yet) gives the last results and the jobs in flight."""
    from shiol_lib.jobs.liveness import job_is_alive
    from shiol_lib.store.jobs import lock_holders

    last = run_table.latest_runs(conn, list(jobs)) if conn is not None else {}
    holders = lock_holders(conn) if conn is not None else {}
    busy = {job for job, holder in holders.items() if job_is_alive(holder, stale_s=settings.heartbeat_stale_s, now=now)}
    return [job_record(spec, now, last.get(name), running=name in busy) for name, spec in jobs.items()]


# --- runs ---------------------------------------------------------------------------------------


def run_records(
    settings: Settings,
    conn: duckdb.DuckDBPyConnection | None,
    *,
    job: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of runs, newest first: ``{"runs", "total", "offset", "limit"}``."""
    rows, total = (
        run_table.page_runs(conn, job=job, status=status, limit=limit, offset=offset) if conn is not None else ([], 0)
    )
    return {
        "runs": [run_record(row, _manifest_of(row)) for row in rows],
        "total": total,
        "offset": offset,
        "limit": limit,
    }


def run_record(row: run_table.RunRow | None, found: tuple[Path, Manifest] | None) -> dict[str, Any]:
    """One run, JSON-ready: its store row (or, without one, its manifest) and its steps' progress."""
    manifest = found[1] if found else None
    if row is None and manifest is None:
        raise ValueError("a run record needs the run's row or its manifest")
    started = row.started_at if row else manifest.started_at  # type: ignore[union-attr]
    finished = row.finished_at if row else manifest.finished_at  # type: ignore[union-attr]
    slot = row.slot if row else manifest.slot  # type: ignore[union-attr]
    status = str(row.status if row else manifest.status)  # type: ignore[union-attr]
    steps = manifest.steps if manifest else []
    current = next((s.name for s in steps if s.status == StepStatus.RUNNING), None)
    return {
        "run_id": row.run_id if row else manifest.run_id,  # type: ignore[union-attr]
        "job": row.job if row else manifest.job,  # type: ignore[union-attr]
        "status": status,
        "trigger": str(row.trigger if row else manifest.trigger),  # type: ignore[union-attr]
        "slot": iso_utc(slot) if slot else None,
        "started_at": iso_utc(started),
        "finished_at": iso_utc(finished) if finished else None,
        "started_at_et": iso_et(started),
        "duration_s": round((finished - started).total_seconds(), 3) if finished else None,
        "current_step": current if status == RunStatus.RUNNING else None,
        "step_count": len(steps),
        "steps_done": sum(1 for s in steps if s.status in _DONE_STEPS),
        "error": row.error if row else manifest.error,  # type: ignore[union-attr]
        "error_class": row.error_class if row else manifest.error_class,  # type: ignore[union-attr]
        "has_report": report_file(found) is not None if found else False,
    }


def run_detail(settings: Settings, conn: duckdb.DuckDBPyConnection | None, run_id: str) -> dict[str, Any]:
    """A run with its steps, its manifest and how to rerun it.

    Raises :class:`~shiol_lib.errors.ArchiveError` for a malformed run id (callers answer 400) and
    :class:`LookupError` for a run neither the store nor the archive has (404).
    """
    archive.check_run_id(run_id)
    row = run_table.run_by_id(conn, run_id) if conn is not None else None
    found = _manifest_of(row) if row is not None else _archived(settings, run_id)
    if row is None and found is None:
        raise LookupError(f"run {run_id} is in neither the store nor the archive {settings.runs_dir}")
    manifest = found[1] if found else None
    closed = manifest is not None and manifest.status != RunStatus.RUNNING
    return {
        **run_record(row, found),
        "steps": [
            {
                "position": position,
                "name": step.name,
                "status": str(step.status),
                "started_at": iso_utc(step.started_at) if step.started_at else None,
                "finished_at": iso_utc(step.finished_at) if step.finished_at else None,
                "duration_s": step.duration_s,
                "error": step.error,
                "notebook": step.output,
                "report": step.html,
            }
            for position, step in enumerate(manifest.steps if manifest else [], start=1)
        ],
        "manifest": manifest_dict(settings, manifest) if manifest else None,
        "rerun_command": f"shiol rerun {run_id}" if closed else None,
        "parent_run_id": row.parent_run_id if row else manifest.parent_run_id if manifest else None,
    }


def manifest_dict(settings: Settings, manifest: Manifest) -> dict[str, Any]:
    """The manifest as JSON, each step's rerun command made anew (an older workbench's reran the live store)."""
    from shiol_lib.execution.runner import rerun_command

    data = manifest.to_dict()
    for record, step in zip(data.get("steps", []), manifest.steps, strict=False):
        if step.command:
            record["command"] = step.command = rerun_command(
                settings.notebooks_dir / step.notebook,
                step.parameters or {},
                cwd=settings.notebooks_dir,
                runs_dir=settings.runs_dir,
                run_id=manifest.run_id,
            )
    return data


def archived_run(settings: Settings, run_id: str) -> tuple[Path, Manifest]:
    """A run's archive folder and manifest; :class:`LookupError` when the archive has no such run."""
    archive.check_run_id(run_id)
    found = _archived(settings, run_id)
    if found is None:
        raise LookupError(f"run {run_id} is not in the archive {settings.runs_dir}; the Runs panel lists them")
    return found


def report_file(found: tuple[Path, Manifest]) -> Path | None:
    """The run's page to read: its run page, else its one step report (None: it has neither)."""
    directory, manifest = found
    if (directory / PAGE).is_file():
        return directory / PAGE
    names = [s.html for s in manifest.steps if s.html] or [n for n in manifest.artefacts if n.endswith(".html")]
    reports = [directory / name for name in names if "/" not in name and (directory / name).is_file()]
    return reports[0] if len(reports) == 1 else None


def archived_names(found: tuple[Path, Manifest]) -> set[str]:
    """The file names of a run that may be served: those its manifest lists (and its run page)."""
    directory, manifest = found
    names = set(manifest.artefacts)
    for step in manifest.steps:
        names.update(n for n in (step.output, step.html, step.log) if n)
    if (directory / PAGE).is_file():
        names.add(PAGE)
    return {n for n in names if "/" not in n and n not in ("", ".", "..")}


def _manifest_of(row: run_table.RunRow) -> tuple[Path, Manifest] | None:
    if not row.archive_dir:
        return None
    directory = Path(row.archive_dir)
    with contextlib.suppress(ShiolError, OSError):
        return directory, archive.read_manifest(directory)
    return None


def _archived(settings: Settings, run_id: str) -> tuple[Path, Manifest] | None:
    try:
        directory = archive.find_run_dir(settings.runs_dir, run_id)
    except ArchiveError:
        return None
    with contextlib.suppress(ShiolError, OSError):
        return directory, archive.read_manifest(directory)
    return None
