"""Execution history: one ``runs`` row per job run, one ``run_steps`` row per notebook step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.store.core import Store

if TYPE_CHECKING:  # duckdb builds the frame (importing pandas then): `shiol status` stays quick
    import pandas as pd

RUN_STATUSES = frozenset(RunStatus)
STEP_STATUSES = frozenset(StepStatus)


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
    store: Store, run_id: str, *, status: str, finished_at: datetime, error: str | None = None,
    error_class: str | None = None,
) -> None:
    """Set the final status of a run."""
    _check_status(status, RUN_STATUSES)
    with store.transaction() as conn:
        conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, error = ?, error_class = ? WHERE run_id = ?",
            [status, finished_at, error, error_class, run_id],
        )


def update_run(store: Store, run_id: str, **fields: object) -> None:
    """Change some columns of a run (e.g. ``heartbeat_at``, ``target_draw_date``, ``archive_dir``)."""
    unknown = set(fields) - set(RunRow.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown run columns {sorted(unknown)}")
    if "status" in fields:
        _check_status(str(fields["status"]), RUN_STATUSES)
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with store.transaction() as conn:
        conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*fields.values(), run_id])


def get_run(store: Store, run_id: str) -> RunRow | None:
    """The run with this id, or None."""
    with store.connect() as conn:
        row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return RunRow(*row) if row else None


def list_runs(store: Store, *, job: str | None = None, limit: int | None = None) -> list[RunRow]:
    """Runs, newest first, optionally of one job."""
    sql = f"SELECT {RUN_COLUMNS} FROM runs"
    params: list[object] = []
    if job is not None:
        sql += " WHERE job = ?"
        params.append(job)
    sql += " ORDER BY started_at DESC, run_id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with store.connect() as conn:
        return [RunRow(*r) for r in conn.execute(sql, params).fetchall()]


def upsert_step(
    store: Store, run_id: str, position: int, step: str, notebook: str, *, status: str,
    started_at: datetime | None = None, finished_at: datetime | None = None, error: str | None = None,
    failed_cell: int | None = None,
) -> None:
    """Record (or replace) the state of one step of a run."""
    _check_status(status, STEP_STATUSES)
    with store.transaction() as conn:
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


def _check_status(status: str, allowed: frozenset[str]) -> None:
    if status not in allowed:
        raise ValueError(f"status {status!r} is not one of {sorted(allowed)}")
