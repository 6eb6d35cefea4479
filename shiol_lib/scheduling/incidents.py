"""Alerts that mean one incident: one alert when a problem opens, one when it clears, none in between.

Each plan carries its incidents (:class:`~shiol_lib.scheduling.plans.Incident`: a missed drawing,
a failure streak, a jobs file that does not validate) under stable keys. :func:`reconcile_incidents`
compares them with the ``incidents`` table: a key not recorded yet is opened and alerted once (whatever
the de-duplication window); an open failure streak the plan no longer shows has ended, an open missed
drawing clears when its job next succeeds, and a jobs file's problem when the file validates again:
each is cleared with one recovery alert. Never raises: a store that cannot be
read or written is logged and tried again on the next plan.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from shiol_lib.domain.runs import IncidentKind
from shiol_lib.errors import JobsFileProblem, ShiolError
from shiol_lib.scheduling.alerts import send_alert
from shiol_lib.scheduling.plans import Incident, Plan, iso
from shiol_lib.settings import Settings
from shiol_lib.store import incidents as incident_table
from shiol_lib.store.core import Store

log = logging.getLogger(__name__)

RECOVERED = "recovered"


def reconcile_incidents(settings: Settings, store: Store, plan: Plan, *, now: datetime | None = None) -> list[str]:
    """Open the plan's new incidents and clear the ended ones, alerting each change once.

    Returns the alerts sent (``opened <key>`` / ``cleared <key>``), for logs and tests.
    """
    now = now or datetime.now(UTC)
    try:
        return _reconcile(settings, store, plan, now)
    except (ShiolError, duckdb.Error) as err:
        log.error("incidents not updated (will try again on the next plan): %s", err)
        return []


def _reconcile(settings: Settings, store: Store, plan: Plan, now: datetime) -> list[str]:
    current = {i.key: i for i in plan.incidents}
    recorded, successes = incident_table.read_incidents(store, list(current))
    sent = []
    for key, incident in current.items():
        row = recorded.get(key)
        if row is None:
            if incident_table.open_incident(
                store, key=key, kind=incident.kind, job=incident.job, message=incident.message, at=now
            ):
                _notify(settings, store, incident.kind, incident.job, incident.message, now)
                sent.append(f"opened {key}")
        elif row.cleared_at is None and row.last_message != incident.message:
            incident_table.update_message(store, key, incident.message)
    for key, row in recorded.items():
        if row.cleared_at is not None or key in current:
            continue
        message = _recovery_message(row, successes.get(key), {i.kind for i in current.values()})
        if message is not None and incident_table.clear_incident(store, key, message=message, at=now):
            _notify(settings, store, RECOVERED, row.job, message, now)
            sent.append(f"cleared {key}")
    return sent


def _recovery_message(
    row: incident_table.IncidentRow, success_run_id: str | None, current_kinds: set[str]
) -> str | None:
    """The recovery alert of an open incident the plan no longer shows, or None while it stands."""
    opened = iso(row.opened_at)
    if row.kind == IncidentKind.DEFINITIONS:  # ends with the problem: the file validates, or another problem stands
        if IncidentKind.DEFINITIONS in current_kinds:
            return (
                f"the jobs file's problem alerted at {opened} is gone; the file still does not validate (alerted anew)"
            )
        return (
            f"the jobs file validates again: its definitions are in force (the problem alerted at {opened} has ended)"
        )
    if row.kind == IncidentKind.FAILURES:
        after = f": run {success_run_id} succeeded" if success_run_id else ""
        return f"{row.job}: recovered{after}; the failure streak alerted at {opened} has ended"
    if success_run_id is not None:  # a missed drawing stays missed; the incident ends when the job works again
        return f"{row.job}: recovered: run {success_run_id} succeeded after the missed drawing alerted at {opened}"
    return None


def _notify(settings: Settings, store: Store, kind: str, job: str, message: str, now: datetime) -> None:
    # the incidents table makes this the only alert for the change: no message de-duplication on top
    send_alert(settings, store, kind=kind, job=job, message=message, now=now, dedup_window_s=0)


def definitions_incident(problems: Sequence[JobsFileProblem]) -> Incident | None:
    """The open problem of a jobs file that does not validate, keyed by what is wrong (None: it validates)."""
    if not problems:
        return None
    text = "; ".join(str(p) for p in problems)
    key = f"{IncidentKind.DEFINITIONS}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    job = next((p.job for p in problems if p.job), "") or ""
    message = f"the jobs file does not validate; the last good definitions stay in force: {text}"
    return Incident(key, IncidentKind.DEFINITIONS, job, message)
