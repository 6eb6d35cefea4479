"""Read queries for monitoring (job health, open dead letters, missed slots) and the alert log.

Failure streaks are :func:`shiol_lib.domain.runs.failure_streak` over a job's runs newest first, the
same rule the planner's failure alert uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb

from shiol_lib.domain.runs import FINISHED_STATUSES, MissedKind, RunStatus, failure_streak
from shiol_lib.store.core import Store
from shiol_lib.store.jobs import DeadLetter
from shiol_lib.store.rows import scalar

_NEWEST_FIRST = "started_at DESC, attempt DESC, run_id DESC"


@dataclass(frozen=True)
class LastRun:
    """One run of a job as monitoring shows it; ``duration_s`` is None while it runs."""

    run_id: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    error: str | None


@dataclass(frozen=True)
class JobHealth:
    """What the store knows about one job's runs."""

    job: str
    last_run: LastRun | None = None  # the newest run, whatever its status (may be running)
    last_finished: LastRun | None = None  # the newest finished run: the job's last result
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    counts: dict[RunStatus, int] = field(default_factory=dict)  # runs by status


@dataclass(frozen=True)
class MissedSlot:
    """A slot (kind ``slot``) or a drawing (kind ``draw``) recorded as missed."""

    job: str
    slot: datetime
    draw_date: date | None
    kind: MissedKind
    recorded_at: datetime


@dataclass(frozen=True)
class Alert:
    """A recorded alert and the channels that delivered it."""

    alert_id: str
    kind: str
    job: str | None
    message: str
    created_at: datetime
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Monitoring:
    """Everything the health endpoint and the metrics read, taken through one connection."""

    jobs: dict[str, JobHealth]
    dead_letters: list[DeadLetter]
    missed_counts: dict[MissedKind, int]  # kind -> number recorded
    recent_missed_draws: list[MissedSlot]
    recent_alerts: list[Alert]


def read_monitoring(store: Store, jobs: Iterable[str] = (), *, recent: int = 20) -> Monitoring:
    """All of the monitoring reads through one connection.

    Job health covers ``jobs`` plus every job found in ``runs``; missed drawings and alerts are the
    ``recent`` newest.
    """
    with store.connect() as conn:
        return Monitoring(
            jobs=_job_health(conn, jobs),
            dead_letters=_open_dead_letters(conn),
            missed_counts=_missed_counts(conn),
            recent_missed_draws=_missed(conn, MissedKind.DRAW, recent),
            recent_alerts=_recent_alerts(conn, recent),
        )


def job_health(store: Store, jobs: Iterable[str] = ()) -> dict[str, JobHealth]:
    """Health of ``jobs`` (zeroed when they never ran) and of every other job found in ``runs``."""
    with store.connect() as conn:
        return _job_health(conn, jobs)


def open_dead_letters(store: Store) -> list[DeadLetter]:
    """Unresolved dead letters, newest first."""
    with store.connect() as conn:
        return _open_dead_letters(conn)


def missed_slots(
    store: Store, *, kind: MissedKind | str | None = None, limit: int | None = None, job: str | None = None
) -> list[MissedSlot]:
    """Recorded missed slots, newest slot first; ``kind`` (a :class:`MissedKind`) and ``job`` filter.

    An unknown ``kind`` raises ``ValueError`` naming the kinds.
    """
    with store.connect() as conn:
        return _missed(conn, kind, limit, job)


def run_durations(store: Store) -> dict[str, list[float]]:
    """Wall-clock seconds of every finished run, by job (refused starts, which never ran, left out)."""
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT job, epoch(finished_at) - epoch(started_at) FROM runs "
            f"WHERE finished_at IS NOT NULL AND status NOT IN ({_sql_list([RunStatus.RUNNING, RunStatus.REFUSED])}) "
            "ORDER BY job"
        ).fetchall()
    durations: dict[str, list[float]] = {}
    for job, seconds in rows:
        durations.setdefault(str(job), []).append(max(0.0, float(seconds)))
    return durations


def count_missed(store: Store) -> dict[MissedKind, int]:
    """Number of recorded missed entries per kind (``slot`` and ``draw`` always present)."""
    with store.connect() as conn:
        return _missed_counts(conn)


def record_alert(
    store: Store, kind: str, job: str | None, message: str, channels: Sequence[str], *, at: datetime | None = None
) -> str:
    """Append an alert and the channels that delivered it to ``alerts``; return its id."""
    if not channels:
        raise ValueError("an alert is recorded with at least one channel (the log always delivers)")
    alert_id = uuid.uuid4().hex
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, kind, job, message, created_at, channels) VALUES (?, ?, ?, ?, ?, ?)",
            [alert_id, kind, job, message, at or datetime.now(UTC), ",".join(channels)],
        )
    return alert_id


def alert_sent_recently(store: Store, message: str, within_s: float, *, now: datetime | None = None) -> bool:
    """Whether an alert with exactly this message was recorded in the last ``within_s`` seconds."""
    now = now or datetime.now(UTC)
    with store.connect() as conn:
        count = scalar(
            conn,
            "SELECT count(*) FROM alerts WHERE message = ? AND created_at > ? AND created_at <= ?",
            [message, now - timedelta(seconds=within_s), now],
        )
    return count > 0


def recent_alerts(store: Store, *, limit: int = 20) -> list[Alert]:
    """The newest recorded alerts first."""
    with store.connect() as conn:
        return _recent_alerts(conn, limit)


# --- queries on an open connection ---------------------------------------------------------------


def _job_health(conn: duckdb.DuckDBPyConnection, jobs: Iterable[str]) -> dict[str, JobHealth]:
    finished = _sql_list(FINISHED_STATUSES)
    counts: dict[str, dict[RunStatus, int]] = {job: {} for job in jobs}
    for job, status, n in conn.execute("SELECT job, status, count(*) FROM runs GROUP BY ALL").fetchall():
        counts.setdefault(job, {})[RunStatus(status)] = n
    last = _newest_runs(conn, "")
    last_finished = _newest_runs(conn, f"WHERE status IN ({finished})")
    success = dict(
        conn.execute(
            "SELECT job, max(coalesce(finished_at, started_at)) FROM runs WHERE status = ? GROUP BY job",
            [RunStatus.SUCCESS.value],
        ).fetchall()
    )
    statuses: dict[str, list[str]] = {}
    for job, status in conn.execute(f"SELECT job, status FROM runs ORDER BY job, {_NEWEST_FIRST}").fetchall():
        statuses.setdefault(job, []).append(status)
    streaks = {job: failure_streak(newest_first) for job, newest_first in statuses.items()}
    return {
        job: JobHealth(
            job=job,
            last_run=last.get(job),
            last_finished=last_finished.get(job),
            last_success_at=success.get(job),
            consecutive_failures=int(streaks.get(job, 0)),
            counts=dict(sorted(by_status.items())),
        )
        for job, by_status in sorted(counts.items())
    }


def _newest_runs(conn: duckdb.DuckDBPyConnection, where: str) -> dict[str, LastRun]:
    rows = conn.execute(
        f"SELECT job, run_id, status, started_at, finished_at, error FROM runs {where} "
        f"QUALIFY row_number() OVER (PARTITION BY job ORDER BY {_NEWEST_FIRST}) = 1"
    ).fetchall()
    return {r[0]: LastRun(r[1], RunStatus(r[2]), r[3], r[4], _seconds(r[3], r[4]), r[5]) for r in rows}


def _open_dead_letters(conn: duckdb.DuckDBPyConnection) -> list[DeadLetter]:
    columns = ", ".join(DeadLetter.__dataclass_fields__)  # the dead-letter record of store.jobs
    rows = conn.execute(
        f"SELECT {columns} FROM dead_letters WHERE resolved_at IS NULL ORDER BY created_at DESC, dead_letter_id"
    ).fetchall()
    return [DeadLetter(*r) for r in rows]


def _missed(
    conn: duckdb.DuckDBPyConnection, kind: MissedKind | str | None, limit: int | None, job: str | None = None
) -> list[MissedSlot]:
    kind = _missed_kind(kind) if kind is not None else None
    sql = "SELECT job, slot, draw_date, kind, recorded_at FROM missed_slots"
    clauses, params = [], []
    for column, value in (("kind", kind), ("job", job)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY slot DESC, job"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [
        MissedSlot(job, slot, drawing, MissedKind(kind), recorded)
        for job, slot, drawing, kind, recorded in conn.execute(sql, params).fetchall()
    ]


def _missed_kind(kind: MissedKind | str) -> MissedKind:
    try:
        return MissedKind(kind)
    except ValueError:
        raise ValueError(f"kind {kind!r} is not one of {tuple(k.value for k in MissedKind)}") from None


def _missed_counts(conn: duckdb.DuckDBPyConnection) -> dict[MissedKind, int]:
    counts = dict.fromkeys(MissedKind, 0)
    for kind, n in conn.execute("SELECT kind, count(*) FROM missed_slots GROUP BY kind").fetchall():
        counts[MissedKind(kind)] = n
    return counts


def _recent_alerts(conn: duckdb.DuckDBPyConnection, limit: int) -> list[Alert]:
    rows = conn.execute(
        "SELECT alert_id, kind, job, message, created_at, channels FROM alerts "
        f"ORDER BY created_at DESC, alert_id LIMIT {int(limit)}"
    ).fetchall()
    return [
        Alert(alert_id, kind, job, message, created_at, tuple(channels.split(",")))
        for alert_id, kind, job, message, created_at, channels in rows
    ]


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))
