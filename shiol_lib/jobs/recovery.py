"""Closing runs whose job process died: crashed runs are closed in the archive, not forgotten.

Whoever notices a dead run (the scheduler at start-up and after each job, and every ``shiol run``
before it starts) calls :func:`close_dead_runs`. For each ``running`` row whose process is gone it
closes the run through its lifecycle (:meth:`~shiol_lib.jobs.lifecycle.RunLifecycle.close_crashed`):
what the partial notebooks hold is rendered (or the report of a step that never started), the
manifest gets status ``crashed`` and the last heartbeat as its end, the run's ledger entry is
appended, the store row is closed with the new ledger head in the same transaction, and the index
is rewritten. A run whose archive folder never existed gets one with a minimal manifest, a run that
recorded a full disk closes ``failed`` with that cause, and a run whose archive cannot be written stays
open until it can: a closed row always has its ledger entry, so verify never reports a missing one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.jobs.liveness import job_is_alive
from shiol_lib.settings import Settings
from shiol_lib.store import Store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import runs as run_table


def close_dead_runs(settings: Settings, store: Store, *, now: datetime | None = None) -> list[run_table.RunRow]:
    """Close every ``running`` run whose process is gone; returns the rows closed (as they were)."""
    now = now or datetime.now(UTC)
    closed = []
    for row in job_table.running_runs(store):
        holder = job_table.LockHolder(
            row.job, row.run_id, row.pid or 0, row.host or "", row.heartbeat_at or row.started_at
        )
        if job_is_alive(holder, stale_s=settings.heartbeat_stale_s, now=now):
            continue
        reason = (
            f"process {row.pid} on {row.host} died; last heartbeat "
            f"{holder.heartbeat_at.isoformat()}, noticed {now.isoformat()}"
        )
        if close_crashed_run(settings, store, row, reason=reason):
            closed.append(row)
    return closed


def close_crashed_run(settings: Settings, store: Store, row: run_table.RunRow, *, reason: str) -> bool:
    """Close one dead run everywhere: rendered partials, final manifest, ledger entry, store row.

    Returns False when its archive could not be written: the row then stays open for a later recovery.
    """
    return RunLifecycle.of_dead_run(settings, store, row).close_crashed(row, reason=reason)
