"""The scheduling planner: which job runs are due at an instant, which slots are missed, and why.

A pure function of the configuration, the execution history and the clock (no SQL, no I/O, no
Rocketry): :func:`plan_runs` reads the history once and walks each job: normalize the history ->
find the job's watermark (the latest slot or drawing the store already knows about) -> classify the
attempt chain there -> look at the slots after it -> decide what is due, what is missed, what to alert.

Rules (DESIGN.md, "Scheduling semantics"):

- A run belongs to one (job, slot). A slot is settled by a success, a recorded missed entry, an
  unresolved dead letter or a run in flight. Slots at or before a job's watermark are settled by that
  knowledge too: after a catch-up run the slots it coalesced are never reported again.
- Each job has its own policy (:class:`JobSchedule`, None: the :class:`PlannerConfig`'s value; see
  :func:`job_policy`): ``catch_up``, ``max_catch_up``, ``grace_s``, ``retry_backoff_s`` (``()``: no
  retry), ``failure_alert_after``, ``draw_delay_s`` and ``writes_store``. The defaults are the
  built-in jobs' behaviour. A slot is ``on-time`` when it is the only one pending within the grace and
  at most ``on_time_s`` old (the scheduler was up at the slot), else ``catch-up``.
- After downtime the unsettled slots of a plain cron job, by its ``catch_up``:
  ``latest`` (default): those within ``grace_s`` coalesce into one run for the newest; older ones
  are reported missed (kind ``slot``). ``none``: nothing runs late. Only the newest pending slot may
  run, and only on time (at most ``min(on_time_s, grace_s)`` old when a plan sees the job able to
  start); every other pending slot is missed at once, and so is that one once it is older, whatever
  kept it (downtime, its own run in flight, another writer's). A failed on-time run still retries.
  ``each``: the newest ``max_catch_up`` slots within the grace run one at a time, oldest first (a
  failing slot's retries before the next slot); older ones, and those past the bound, are missed.
- A drawing-linked job (the pipeline, or any after-drawing job: nothing depends on the name) owes the
  latest drawing passed its own ``draw_delay_s`` ago, for as long
  as the next drawing has not happened; it is caught up whatever the downtime (``missed-draw`` when its
  slot is older than the grace; ``on-time`` or ``catch-up`` as for a plain slot otherwise, whatever
  the store's age). A drawing whose window closed without a success is missed (kind ``draw``) and
  never run late; so is one still ``waiting`` for results past ``waiting_deadline_s`` after the
  drawing. For such a job only a run for a drawing settles it: a success, a dead letter, a missed
  entry or a run in flight for that drawing settles all of its slots, whatever triggered the run.
  Only one drawing's window is open at a time, so ``latest`` and ``each`` are alike here; with
  ``none`` the drawing runs only at an on-time slot: a stale one waits for a later slot of the same
  window, and the drawing is missed (kind ``draw``) when none remains.
- A job is in service from the scheduler's first start or its first scheduled run, whichever came
  first; a manual run (or a rerun) never moves that. Nothing before it is reported missed (a plain
  slot still fresh then is owed, and so is the drawing owed then); a job not in service owes only its
  latest fresh slot or its latest drawing, and reports nothing missed.
- A failed or timed-out attempt retries after its backoff; a crashed (or interrupted, or running with
  a stale heartbeat) attempt is due at once (``recovery``); attempts that ended ``waiting`` retry on
  the backoff capped at its last value and do not use up the retry budget. After the last attempt
  nothing is due: the executor writes a dead letter.
- While a job has a run in flight nothing else of that job is due (the slot stays pending and is
  caught up or missed later); a retry whose slot a newer slot superseded is reported missed instead.
- Write serialization: a ``writes_store`` job is never due while another writer (a planned
  ``writes_store`` job, or one of ``store_writers``: paused or manual jobs) has a run in flight; its
  slot stays pending and is caught up or missed later by its own policy. Two writers due in the same
  plan are both listed: the cross-process lock taken at run start lets one through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shiol_lib.domain.draw_calendar import NEW_YORK, et_and_utc
from shiol_lib.domain.runs import FINISHED_STATUSES, IncidentKind, MissedKind, failure_streak
from shiol_lib.domain.slots import CatchUp, CronSpec, next_slot, previous_slot, slots_between, to_utc
from shiol_lib.scheduling.job_history import (
    AttemptChain,
    JobPolicy,
    JobView,
    PlanCollector,
    classify_chain,
    fresh_reason,
    job_policy,
)
from shiol_lib.scheduling.owed_drawings import plan_drawing_job
from shiol_lib.scheduling.plans import (  # the planner's inputs and outputs, re-exported here
    Due,
    History,
    Incident,
    JobSchedule,
    Missed,
    Plan,
    PlannerConfig,
    RunLike,
    RunRecord,
    SlotLike,
    SlotRecord,
    default_jobs,
)

__all__ = [
    "Due",
    "History",
    "Incident",
    "JobPolicy",
    "JobSchedule",
    "Missed",
    "Plan",
    "PlannerConfig",
    "RunLike",
    "RunRecord",
    "SlotLike",
    "SlotRecord",
    "default_jobs",
    "job_policy",
    "plan_runs",
]


def plan_runs(history: History, at: datetime, config: PlannerConfig | None = None) -> Plan:
    """The plan at instant ``at``: due runs, newly missed slots and drawings, next slots, alerts."""
    config = config or PlannerConfig()
    now = to_utc(at, "at")
    out = PlanCollector()
    views = {name: JobView.build(name, s.drawing_linked, history, config, now) for name, s in config.jobs.items()}
    writing = _writers_in_flight(history, config, views, now)
    for name, schedule in config.jobs.items():
        view, policy = views[name], job_policy(config, name)
        view.held = policy.writes_store and bool(writing - {name})
        if schedule.drawing_linked:
            plan_drawing_job(name, schedule.spec, view, policy, config, now, out)
        else:
            _plan_slot_job(name, schedule.spec, view, policy, config, now, out)
        for incident in _failure_incidents(name, view, policy):
            out.raise_incident(incident)
    upcoming = {name: next_slot(s.spec, now) for name, s in config.jobs.items()}
    wakes = [to_utc(w, "wake") for w in [*out.wakes, *upcoming.values()] if w > now]
    return Plan(
        at=now.astimezone(NEW_YORK),
        due=sorted(out.due, key=lambda d: (d.slot, d.job)),
        missed=sorted(out.missed, key=lambda m: (m.slot, m.job)),
        next=upcoming,
        alerts=out.alerts,
        wake_at=min(wakes).astimezone(NEW_YORK) if wakes else None,
        incidents=out.incidents,
    )


# --- write serialization --------------------------------------------------------------------------


def _writers_in_flight(history: History, config: PlannerConfig, views: dict[str, JobView], now: datetime) -> set[str]:
    """The jobs that write the store (planned ones, and ``store_writers``) with a run in flight."""
    writing = {name for name, view in views.items() if view.busy and job_policy(config, name).writes_store}
    for name in config.store_writers - set(views):
        if JobView.build(name, False, history, config, now).busy:
            writing.add(name)
    return writing


# --- plain cron jobs ------------------------------------------------------------------------------


def _plan_slot_job(
    job: str, spec: CronSpec, view: JobView, policy: JobPolicy, config: PlannerConfig, now: datetime, out: PlanCollector
) -> None:
    """A plain cron job: the pending slots after the watermark by its catch-up policy; retry the head."""
    window = timedelta(seconds=_window_s(policy, config))
    known = {r.slot for r in view.runs if r.slot is not None} | view.recorded_slots
    if view.service_start is None:  # never scheduled: owe the latest slot if it is fresh, report nothing before it
        _owe_latest_fresh_slot(job, spec, view, known, window, config, now, out)
        return
    watermark = max(known) if known else None
    entered = view.service_start - (window if not view.clamped else timedelta(0))  # a slot fresh then is owed too
    head = _head_chain(view, watermark, entered, policy)
    lower = max(watermark, entered) if watermark is not None else entered
    pending = [s.astimezone(UTC) for s in slots_between(spec, lower, now)]
    if not pending:
        if head is not None and view.can_start and (due := out.chain_due(job, head, now)) is not None:
            out.due.append(due)
    elif policy.catch_up == CatchUp.EACH:
        _catch_up_each(job, pending, head, view, policy, config, now, out)
    else:
        _coalesce_pending(job, pending, head, view, policy, config, now, out)


def _window_s(policy: JobPolicy, config: PlannerConfig) -> float:
    """How old a pending slot may be and still run: the grace; ``none``: on time only."""
    return min(policy.grace_s, config.on_time_s) if policy.catch_up == CatchUp.NONE else policy.grace_s


def _owe_latest_fresh_slot(
    job: str,
    spec: CronSpec,
    view: JobView,
    known: set[datetime],
    window: timedelta,
    config: PlannerConfig,
    now: datetime,
    out: PlanCollector,
) -> None:
    """A job not in service owes its latest slot when it is within its window, unknown, and the job can start."""
    latest = previous_slot(spec, now)
    if latest is None or now - latest > window or not view.can_start:
        return
    if to_utc(latest, "slot") not in known:
        out.due.append(Due(job, latest, fresh_reason((now - latest).total_seconds(), 1, config), None, 1))


def _head_chain(view: JobView, watermark: datetime | None, entered: datetime, policy: JobPolicy) -> AttemptChain | None:
    """The attempts at the watermark slot, when they are the job's own runs since it entered service."""
    if watermark is None or watermark in view.recorded_slots or watermark <= entered:
        return None
    return classify_chain([r for r in view.runs if r.slot == watermark], policy.retry_backoff_s)


def _coalesce_pending(
    job: str,
    pending: list[datetime],
    head: AttemptChain | None,
    view: JobView,
    policy: JobPolicy,
    config: PlannerConfig,
    now: datetime,
    out: PlanCollector,
) -> None:
    """``latest`` and ``none``: miss the slots past the window (and a superseded retry); run the newest as one.

    ``none`` runs only the newest pending slot, on time; every other is missed at once.
    """
    window = timedelta(seconds=_window_s(policy, config))
    fresh = [s for s in pending if now - s <= window]
    if policy.catch_up == CatchUp.NONE:
        fresh = fresh[-1:]
    for slot in pending:
        if slot not in fresh:
            out.miss(job, slot, None, MissedKind.SLOT)
    if head is not None and head.live and head.slot is not None:  # a retry a newer slot superseded
        out.miss(job, head.slot, head.drawing, MissedKind.SLOT)
    if fresh and view.can_start:
        latest = fresh[-1]
        reason = fresh_reason((now - latest).total_seconds(), len(fresh), config)
        out.due.append(Due(job, latest.astimezone(NEW_YORK), reason, None, 1))


def _catch_up_each(
    job: str,
    pending: list[datetime],
    head: AttemptChain | None,
    view: JobView,
    policy: JobPolicy,
    config: PlannerConfig,
    now: datetime,
    out: PlanCollector,
) -> None:
    """``each``: the newest ``max_catch_up`` slots within the grace run one at a time, oldest first; the rest missed.

    A failed slot's retries come before the next slot (it is the oldest).
    """
    grace = timedelta(seconds=policy.grace_s)
    kept = [s for s in pending if now - s <= grace][-policy.max_catch_up :]
    for slot in pending:
        if slot not in kept:
            out.miss(job, slot, None, MissedKind.SLOT)
    if head is not None and head.live:
        if view.can_start and (due := out.chain_due(job, head, now)) is not None:
            out.due.append(due)
        return
    if kept and view.can_start:
        oldest = kept[0]
        reason = fresh_reason((now - oldest).total_seconds(), len(kept), config)
        out.due.append(Due(job, oldest.astimezone(NEW_YORK), reason, None, 1))


# --- alerts ---------------------------------------------------------------------------------------


def _failure_incidents(job: str, view: JobView, policy: JobPolicy) -> list[Incident]:
    """The failure streak of ``job`` as an incident keyed by the streak's first run, once it is ``n`` long."""
    n = policy.failure_alert_after
    newest_first = list(reversed(view.runs))
    streak = failure_streak(r.raw_status for r in newest_first)
    if streak < n:
        return []
    finished = [r for r in newest_first if r.raw_status in FINISHED_STATUSES]
    latest, first = finished[0], finished[streak - 1]  # the streak is the newest `streak` finished runs
    message = (
        f"{job}: the last {n} runs failed in a row (latest {latest.run_id}: {latest.raw_status} "
        f"at {et_and_utc(latest.finished)})"
    )
    return [Incident(f"{job}:{IncidentKind.FAILURES}:{first.run_id}", IncidentKind.FAILURES, job, message)]
