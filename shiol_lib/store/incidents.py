"""The ``incidents`` table: one row per alerting problem, opened once and cleared once.

Opening and clearing are conditional writes (insert if absent, clear if open) whose row count says
whether this caller did it, so two threads or two schedulers never both announce the same change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shiol_lib.domain.runs import IncidentKind
from shiol_lib.store.core import Store


@dataclass(frozen=True)
class IncidentRow:
    """A recorded incident; ``cleared_at`` is None while it is open."""

    key: str
    kind: str
    job: str
    opened_at: datetime
    cleared_at: datetime | None
    last_message: str


_COLUMNS = "incident_key, kind, job, opened_at, cleared_at, last_message"


def open_incident(store: Store, *, key: str, kind: str, job: str, message: str, at: datetime) -> bool:
    """Record the incident ``key`` as opened at ``at``; False when it was already recorded (open or cleared)."""
    with store.transaction() as conn:
        inserted = conn.execute(
            f"INSERT INTO incidents ({_COLUMNS}) VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING",
            [key, kind, job, at, message],
        ).fetchone()
    return bool(inserted and inserted[0])


def clear_incident(store: Store, key: str, *, message: str, at: datetime) -> bool:
    """Mark the open incident ``key`` cleared at ``at``; False when it was not open."""
    with store.transaction() as conn:
        updated = conn.execute(
            "UPDATE incidents SET cleared_at = ?, last_message = ? WHERE incident_key = ? AND cleared_at IS NULL",
            [at, message, key],
        ).fetchone()
    return bool(updated and updated[0])


def update_message(store: Store, key: str, message: str) -> None:
    """Keep the newest message of an open incident (no alert: the incident is the same)."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE incidents SET last_message = ? WHERE incident_key = ? AND cleared_at IS NULL", [message, key]
        )


def read_incidents(store: Store, keys: list[str] | None = None) -> tuple[dict[str, IncidentRow], dict[str, str]]:
    """The open incidents by key, and the newest success run id of each of their jobs.

    For a missed drawing only a success started after the incident opened counts (the job working
    again); for a failure streak the newest success (the one that ended it).

    With ``keys``, incidents with those keys are returned too whether open or not (to know what is
    already recorded). One connection: the planning thread calls this on every plan.
    """
    with store.connect() as conn:
        sql = f"SELECT {_COLUMNS} FROM incidents WHERE cleared_at IS NULL"
        params: list[object] = []
        if keys:
            sql += f" OR incident_key IN ({', '.join('?' for _ in keys)})"
            params = list(keys)
        rows = {r[0]: IncidentRow(*r) for r in conn.execute(sql, params).fetchall()}
        successes = {}
        for key, row in rows.items():
            if row.cleared_at is not None:
                continue
            since = row.opened_at if row.kind == IncidentKind.MISSED_DRAW else datetime.min.replace(tzinfo=UTC)
            found = conn.execute(
                "SELECT run_id FROM runs WHERE job = ? AND status = 'success' AND started_at >= ? "
                "ORDER BY started_at DESC LIMIT 1",
                [row.job, since],
            ).fetchone()
            if found:
                successes[key] = found[0]
    return rows, successes


def list_incidents(store: Store, *, limit: int = 50) -> list[IncidentRow]:
    """Incidents, newest opened first."""
    with store.connect() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM incidents ORDER BY opened_at DESC, incident_key LIMIT {int(limit)}"
        ).fetchall()
    return [IncidentRow(*r) for r in rows]
