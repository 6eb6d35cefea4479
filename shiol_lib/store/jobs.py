"""Job exclusivity, dead letters and missed slots: the durable state behind the scheduler's promises."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from shiol_lib.domain.runs import RunStatus
from shiol_lib.store.core import Store
from shiol_lib.store.rows import scalar
from shiol_lib.store.runs import RUN_COLUMNS, RunRow

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class LockHolder:
    """Who holds a job: the run, its process and its last heartbeat (as the run's row records them)."""

    job: str
    run_id: str
    pid: int
    host: str
    heartbeat_at: datetime


# A lock's holder: its run's job, process and heartbeat; a lock whose run row is gone holds nothing.
_HOLDER_SQL = (
    "SELECT r.job, l.run_id, r.pid, r.host, coalesce(r.heartbeat_at, r.started_at) "
    "FROM job_locks l JOIN runs r ON r.run_id = l.run_id WHERE l.job IN ({names}) ORDER BY l.acquired_at"
)
STORE_WRITER_LOCK = "store:write"  # held by the run of every job that writes the store (no job is named so)


def _holders(conn: Any, names: Sequence[str]) -> list[LockHolder]:
    sql = _HOLDER_SQL.format(names=", ".join("?" * len(names)))
    return [LockHolder(*row) for row in conn.execute(sql, list(names)).fetchall()]


def start_run_exclusive(
    store: Store,
    row: RunRow,
    *,
    is_alive: Callable[[LockHolder], bool],
    take: bool = True,
    locks: Sequence[str] = (),
) -> LockHolder | None:
    """Insert ``row`` as the job's one running run, in one transaction with taking the job's lock.

    ``locks`` names further locks the run takes with its job's (:data:`STORE_WRITER_LOCK` for a job
    that writes the store). When a live process already holds any of them, ``row`` is recorded with
    status ``refused`` instead and the holder is returned; otherwise returns None. A holder that
    ``is_alive`` says is gone is replaced (its run is left for recovery to close). With ``take``
    false a free job is left free and nothing is written (see :func:`refuse_if_held`).
    """
    names = [f.name for f in fields(RunRow)]
    wanted = [row.job, *locks]
    with store.transaction() as conn:
        busy = next((h for h in _holders(conn, wanted) if is_alive(h)), None)
        values = dict(zip(names, (getattr(row, n) for n in names)))
        if busy is None and not take:
            return None
        if busy is not None:
            values["status"] = RunStatus.REFUSED
            values["finished_at"] = row.started_at
            values["error"] = busy_reason(row.job, busy)
        else:
            for name in wanted:
                conn.execute(
                    "INSERT OR REPLACE INTO job_locks (job, run_id, acquired_at) VALUES (?, ?, ?)",
                    [name, row.run_id, row.started_at],
                )
        conn.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(names))})",
            [values[n] for n in names],
        )
    return busy


def busy_reason(job: str, holder: LockHolder) -> str:
    """Why a start of ``job`` is refused while ``holder`` runs: the same job, or another store writer."""
    where = f"as run {holder.run_id} (pid {holder.pid} on {holder.host})"
    if holder.job == job:
        return f"job {job} is already running {where}"
    return f"job {job} writes the store and job {holder.job} is writing it now, {where}; writers take turns"


def refuse_if_held(
    store: Store, row: RunRow, *, is_alive: Callable[[LockHolder], bool], locks: Sequence[str] = ()
) -> LockHolder | None:
    """Record ``row`` as ``refused`` and return the holder when a live process holds the job; else write nothing.

    One read when the job is free; the lock is never taken here (:func:`start_run_exclusive` decides
    again, in its transaction, when the run opens).
    """
    with store.connect() as conn:
        held = _holders(conn, [row.job, *locks])
    if not any(is_alive(h) for h in held):
        return None
    return start_run_exclusive(store, row, is_alive=is_alive, take=False, locks=locks)


def heartbeat(store: Store, job: str, run_id: str, at: datetime) -> None:
    """Record that the run is alive (on its row, which its job lock names); never republishes the snapshot."""
    with store.transaction(publish=False) as conn:
        conn.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND job = ?", [at, run_id, job])


def release_job(store: Store, run_id: str) -> None:
    """Give back the locks the run holds (its job's, and the store writers' when it took it)."""
    with store.transaction() as conn:
        conn.execute("DELETE FROM job_locks WHERE run_id = ?", [run_id])


def running_runs(store: Store) -> list[RunRow]:
    """Rows still marked running."""
    with store.connect() as conn:
        rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running'").fetchall()
    return [RunRow(*r) for r in rows]


def mark_crashed(
    store: Store, run_id: str, *, at: datetime, reason: str, ledger_head: tuple[int, str] | None = None
) -> None:
    """Close a running row whose process is gone, free its job, and anchor the ledger head if given."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE runs SET status = 'crashed', finished_at = ?, error = ?, error_class = 'crashed' "
            "WHERE run_id = ? AND status = 'running'",
            [at, reason, run_id],
        )
        conn.execute("DELETE FROM job_locks WHERE run_id = ?", [run_id])
        if ledger_head is not None:
            conn.execute(
                "INSERT OR REPLACE INTO ledger_head (id, seq, entry_hash, run_id, updated_at) VALUES (1, ?, ?, ?, ?)",
                [int(ledger_head[0]), str(ledger_head[1]), run_id, at],
            )


@dataclass(frozen=True)
class DeadLetter:
    """A job run that failed every attempt: what failed, where, and the command that re-runs it."""

    dead_letter_id: str
    job: str
    slot: datetime | None
    draw_date: date | None
    attempts: int
    last_run_id: str
    error_class: str
    error: str | None
    notebook: str | None
    failed_cell: int | None
    rerun_command: str
    created_at: datetime
    resolved_at: datetime | None
    resolved_by_run_id: str | None


def add_dead_letter(store: Store, letter: DeadLetter) -> None:
    """Record a dead letter."""
    names = [f.name for f in fields(DeadLetter)]
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO dead_letters ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [getattr(letter, n) for n in names],
        )


def new_dead_letter_id() -> str:
    """A short unique id."""
    return uuid.uuid4().hex[:12]


def list_dead_letters(store: Store, *, include_resolved: bool = False) -> list[DeadLetter]:
    """Dead letters, newest first."""
    names = ", ".join(f.name for f in fields(DeadLetter))
    where = "" if include_resolved else " WHERE resolved_at IS NULL"
    with store.connect() as conn:
        rows = conn.execute(f"SELECT {names} FROM dead_letters{where} ORDER BY created_at DESC").fetchall()
    return [DeadLetter(*r) for r in rows]


def resolve_dead_letters(
    store: Store, *, job: str, slot: datetime | None, draw_date: date | None, run_id: str, at: datetime
) -> int:
    """Resolve the open dead letters that a successful run of the same job and slot (or drawing) answers."""
    with store.transaction() as conn:
        before = scalar(conn, "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL")
        conn.execute(
            "UPDATE dead_letters SET resolved_at = ?, resolved_by_run_id = ? WHERE resolved_at IS NULL "
            "AND job = ? AND ((? IS NOT NULL AND draw_date = ?) OR (? IS NOT NULL AND slot = ?))",
            [at, run_id, job, draw_date, draw_date, slot, slot],
        )
        after = scalar(conn, "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL")
    return before - after


def record_missed(store: Store, *, job: str, slot: datetime, draw_date: date | None, kind: str, at: datetime) -> bool:
    """Record a slot (or drawing) as missed once; returns True when it was new."""
    with store.transaction() as conn:
        exists = scalar(conn, "SELECT count(*) FROM missed_slots WHERE job = ? AND slot = ?", [job, slot])
        if not exists:
            conn.execute("INSERT INTO missed_slots VALUES (?, ?, ?, ?, ?)", [job, slot, draw_date, kind, at])
    return not exists


def record_scheduler_start(store: Store, *, at: datetime, pid: int, host: str) -> None:
    """Record that the scheduler process started (the first such row is the jobs' entry into service)."""
    with store.transaction() as conn:
        conn.execute("INSERT INTO scheduler_starts VALUES (?, ?, ?)", [at, pid, host])


def planner_history(
    store: Store, since: datetime
) -> tuple[list[RunRow], list[tuple], list[DeadLetter], datetime | None]:
    """Everything the planner reads, in one connection.

    Runs started since ``since`` (and any still running), missed entries since then, the open
    dead letters, and the scheduler's first start (None if it never started on this store).
    """
    letter_columns = ", ".join(f.name for f in fields(DeadLetter))
    with store.connect() as conn:
        runs = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE started_at >= ? OR status = 'running' ORDER BY started_at", [since]
        ).fetchall()
        missed = conn.execute(
            "SELECT job, slot, draw_date, kind FROM missed_slots WHERE slot >= ? ORDER BY slot", [since]
        ).fetchall()
        letters = conn.execute(
            f"SELECT {letter_columns} FROM dead_letters WHERE resolved_at IS NULL ORDER BY created_at DESC"
        ).fetchall()
        first_start = scalar(conn, "SELECT min(started_at) FROM scheduler_starts")
    return [RunRow(*r) for r in runs], [tuple(r) for r in missed], [DeadLetter(*r) for r in letters], first_start


def lock_holders(conn: duckdb.DuckDBPyConnection) -> dict[str, LockHolder]:
    """Every held job and its holder, on any connection (the reader snapshot's too)."""
    rows = conn.execute(
        "SELECT r.job, l.run_id, r.pid, r.host, coalesce(r.heartbeat_at, r.started_at) "
        "FROM job_locks l JOIN runs r ON r.run_id = l.run_id WHERE l.job = r.job"
    ).fetchall()
    return {str(r[0]): LockHolder(*r) for r in rows}
