"""Execution history: one ``runs`` row per job run, one ``run_steps`` row per notebook step."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from shiol_lib.domain.environments import Drift, EnvironmentRecord, compare_packages
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import StoreError
from shiol_lib.store.core import Store

if TYPE_CHECKING:  # duckdb builds the frame (importing pandas then): `shiol status` stays quick
    import duckdb
    import pandas as pd

log = logging.getLogger(__name__)

RUN_STATUSES = frozenset(RunStatus)
STEP_STATUSES = frozenset(StepStatus)
_DEAD = frozenset({RunStatus.CRASHED, RunStatus.INTERRUPTED, RunStatus.TIMEOUT})


@dataclass(frozen=True)
class RunRow:
    """One row of ``runs``."""

    run_id: str
    job: str
    slot: datetime | None
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    error_class: str | None
    target_draw_date: date | None
    attempt: int
    parent_run_id: str | None
    seed: int | None
    pid: int | None
    host: str | None
    heartbeat_at: datetime | None
    archive_dir: str | None
    draw_date: date | None = None  # the drawing whose result this run processes (pipeline runs)


RUN_COLUMNS = ", ".join(RunRow.__dataclass_fields__)


def insert_run(store: Store, row: RunRow) -> None:
    """Record a new run (usually with status ``running``)."""
    _check_status(row.status, RUN_STATUSES)
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(RunRow.__dataclass_fields__))})",
            [getattr(row, name) for name in RunRow.__dataclass_fields__],
        )


def finish_run(
    store: Store,
    run_id: str,
    *,
    status: str,
    finished_at: datetime,
    error: str | None = None,
    error_class: str | None = None,
    ledger_head: tuple[int, str] | None = None,
) -> None:
    """Set the final status of a run; with ``ledger_head`` (seq, hash), anchor it in the same transaction."""
    _check_status(status, RUN_STATUSES)
    with store.transaction() as conn:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ?, error_class = ? WHERE run_id = ?",
            [status, finished_at, error, error_class, run_id],
        )
        if ledger_head is not None:
            _write_head(conn, ledger_head, run_id, finished_at)


def anchor_ledger(store: Store, head: tuple[int, str], *, run_id: str | None = None) -> None:
    """Record the ledger head (seq, hash) outside ``runs/`` (after a prune entry, say)."""
    with store.transaction() as conn:
        _write_head(conn, head, run_id, datetime.now(UTC))


def ledger_anchor(store: Store) -> tuple[int, str] | None:
    """The ledger head the store anchored (seq, hash), or None before any run closed with one."""
    with store.connect() as conn:
        row = conn.execute("SELECT seq, entry_hash FROM ledger_head WHERE id = 1").fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _write_head(conn: object, head: tuple[int, str], run_id: str | None, at: datetime) -> None:
    conn.execute(  # type: ignore[attr-defined]
        "INSERT OR REPLACE INTO ledger_head (id, seq, entry_hash, run_id, updated_at) VALUES (1, ?, ?, ?, ?)",
        [int(head[0]), str(head[1]), run_id, at],
    )


def archived_runs(store: Store) -> dict[str, str]:
    """Run id -> status of every run that has an archive folder (refused starts never had one)."""
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT run_id, status FROM runs WHERE archive_dir IS NOT NULL AND status <> 'refused'"
        ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def refuse_dead_run(conn: object, run_id: str) -> None:
    """Inside a write transaction: refuse a step result for a run that is no longer the live one.

    A run closed as crashed, interrupted or timed out is dead: a kernel orphaned by a killed job must
    not write under its id while its recovery runs. A run id the store has never seen (``manual``, a
    notebook run by hand) is allowed.
    """
    row = conn.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()  # type: ignore[attr-defined]
    if row is not None and row[0] in _DEAD:
        raise StoreError(
            f"run {run_id} is closed as {row[0]}; its step results are refused (the run was recovered or "
            "stopped; re-run it with 'shiol rerun' or a new run)"
        )


def update_run(store: Store, run_id: str, *, publish: bool = True, **fields: object) -> None:
    """Change some columns of a run (e.g. ``heartbeat_at``, ``target_draw_date``, ``archive_dir``).

    ``publish=False``: a change no reader needs at once (it reaches the snapshot with the next published write).
    """
    unknown = set(fields) - set(RunRow.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown run columns {sorted(unknown)}")
    if "status" in fields:
        _check_status(str(fields["status"]), RUN_STATUSES)
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with store.transaction(publish=publish) as conn:
        conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*fields.values(), run_id])


def get_run(store: Store, run_id: str) -> RunRow | None:
    """The run with this id, or None."""
    with store.connect() as conn:
        row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return RunRow(*row) if row else None


def list_runs(store: Store, *, job: str | None = None, limit: int | None = None) -> list[RunRow]:
    """Runs, newest first, optionally of one job."""
    with store.connect() as conn:
        return page_runs(conn, job=job, limit=limit)[0]


def upsert_step(
    store: Store,
    run_id: str,
    position: int,
    step: str,
    notebook: str,
    *,
    status: str,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    error: str | None = None,
    failed_cell: int | None = None,
    publish: bool = True,
) -> None:
    """Record (or replace) the state of one step of a run (``publish``: as :func:`update_run`)."""
    _check_status(status, STEP_STATUSES)
    with store.transaction(publish=publish) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO run_steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, position, step, notebook, status, started_at, finished_at, error, failed_cell],
        )


def read_steps(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """The steps of the given runs, in run and position order."""
    with store.connect() as conn:
        return conn.execute(
            "SELECT * FROM run_steps WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, position",
            [list(run_ids)],
        ).df()


def record_environment(store: Store, run_id: str, record: EnvironmentRecord) -> bool:
    """Keep ``record``'s package list (once per distinct hash) and name its hash on the run's row.

    One transaction, written as a run opens: like a heartbeat it does not republish the snapshot (the
    run's next write does), so a disk too full for the snapshot's copy lets the run go on and meet it
    where it is recorded (``disk_full``). Returns whether the list was new to the store.
    """
    with store.transaction(publish=False) as conn:
        known = conn.execute("SELECT 1 FROM environments WHERE sha256 = ?", [record.sha256]).fetchone()
        if known is None:
            conn.execute(
                "INSERT INTO environments (sha256, packages, first_seen) VALUES (?, ?, ?)",
                [record.sha256, json.dumps(list(record.packages)), datetime.now(UTC)],
            )
        conn.execute("UPDATE runs SET environment_sha256 = ? WHERE run_id = ?", [record.sha256, run_id])
    return known is None


def environment_packages(store: Store, sha256: str) -> tuple[str, ...] | None:
    """The ``name==version`` list stored under ``sha256``, or None."""
    with store.connect() as conn:
        row = conn.execute("SELECT packages FROM environments WHERE sha256 = ?", [sha256]).fetchone()
    return tuple(json.loads(row[0])) if row else None


def run_environment(store: Store, run_id: str) -> str | None:
    """The package list hash a run recorded, or None (no such run, or none recorded)."""
    with store.connect() as conn:
        row = conn.execute("SELECT environment_sha256 FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return str(row[0]) if row and row[0] else None


def drift(store: Store, job: str, record: EnvironmentRecord) -> Drift:
    """How ``record``'s packages differ from those of ``job``'s last successful run that recorded some.

    ``previous_sha`` is None (and nothing differs) when no such run exists.
    """
    with store.connect() as conn:
        row = conn.execute(
            "SELECT environment_sha256 FROM runs WHERE job = ? AND status = ? AND environment_sha256 IS NOT NULL "
            "ORDER BY started_at DESC, run_id DESC LIMIT 1",
            [job, str(RunStatus.SUCCESS)],
        ).fetchone()
    if row is None:
        return Drift(previous_sha=None)
    previous = str(row[0])
    if previous == record.sha256:
        return Drift(previous_sha=previous)
    return compare_packages(environment_packages(store, previous) or (), record.packages, previous_sha=previous)


def check_environment(store: Store, job: str, record: EnvironmentRecord, *, strict: bool) -> str | None:
    """The reason to refuse a run of ``job`` on ``record`` (``strict`` and the packages drifted), else None.

    The reason names the differing packages. Without ``strict`` a drift is logged as a warning (the run
    records its hash, and :class:`~shiol_lib.jobs.lifecycle.RunLifecycle` the drift, in its manifest).
    """
    found = drift(store, job, record)
    if not found:
        return None
    reason = (
        f"job {job!r}: the installed packages differ from those of its last successful run "
        f"(environment {str(found.previous_sha)[:12]}): {found.describe()}"
    )
    if strict:
        return (
            f"{reason}; the job's environment policy is strict, so this run is refused: install those versions "
            'again, or set environment = "warn" in the job\'s definition to run and record the drift'
        )
    log.warning("%s (environment policy warn: the run goes ahead and records the drift)", reason)
    return None


def _check_status(status: str, allowed: frozenset[str]) -> None:
    if status not in allowed:
        raise ValueError(f"status {status!r} is not one of {sorted(allowed)}")


def page_runs(
    conn: duckdb.DuckDBPyConnection,
    *,
    job: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[RunRow], int]:
    """One page of runs, newest first, and how many match, on any connection (the reader snapshot's too)."""
    where: list[str] = []
    params: list[object] = []
    for column, value in (("job", job), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(conn.execute(f"SELECT count(*) FROM runs{clause}", params).fetchone()[0])  # type: ignore[index]
    sql = f"SELECT {RUN_COLUMNS} FROM runs{clause} ORDER BY started_at DESC, run_id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if offset:
        sql += f" OFFSET {int(offset)}"
    return [RunRow(*r) for r in conn.execute(sql, params).fetchall()], total


def run_by_id(conn: duckdb.DuckDBPyConnection, run_id: str) -> RunRow | None:
    """The run with this id on any connection (the reader snapshot's too), or None."""
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return RunRow(*row) if row else None


def latest_runs(conn: duckdb.DuckDBPyConnection, jobs: Sequence[str]) -> dict[str, RunRow]:
    """Each job's newest run (jobs without one are left out)."""
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY job ORDER BY started_at DESC, "
        "run_id DESC) AS n FROM runs WHERE job IN (SELECT unnest(?::VARCHAR[]))) WHERE n = 1",
        [list(jobs)],
    ).fetchall()
    return {r.job: r for r in (RunRow(*row) for row in rows)}
