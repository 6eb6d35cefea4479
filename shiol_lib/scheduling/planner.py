"""The scheduling planner: which job runs are due at an instant, which slots are missed, and why.

A pure function of the configuration, the execution history and the clock (no SQL, no I/O, no
Rocketry): :func:`plan_runs` reads the history once and walks each job: normalize the history ->
find the job's watermark (the latest slot or drawing the store already knows about) -> classify the
attempt chain there -> look at the slots after it -> decide what is due, what is missed, what to alert.

Rules (DESIGN.md, "Scheduling semantics"):

- A run belongs to one (job, slot). A slot is settled by a success, a recorded missed entry, an
  unresolved dead letter or a run in flight. Slots at or before a job's watermark are settled by that
  knowledge too: after a catch-up run the slots it coalesced are never reported again.
- After downtime the unsettled slots of a job within ``grace_s`` coalesce into one run for the latest
  (``catch-up``); older ones are reported missed (kind ``slot``). A slot is ``on-time`` when it is the
  only one pending within the grace and at most ``on_time_s`` old (the scheduler was up at the slot).
- A drawing-linked job (the pipeline) owes the latest drawing passed ``draw_delay_s`` ago, for as long
  as the next drawing has not happened; it is caught up whatever the downtime (``missed-draw`` when its
  slot is older than the grace; ``on-time`` or ``catch-up`` as for a plain slot otherwise, whatever
  the store's age). A drawing whose window closed without a success is missed (kind ``draw``) and
  never run late; so is one still ``waiting`` for results past ``waiting_deadline_s`` after the
  drawing. For such a job only a run for a drawing settles it: a success, a dead letter, a missed
  entry or a run in flight for that drawing settles all of its slots, whatever triggered the run.
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shiol_lib.domain.draw_calendar import NEW_YORK, draw_after, draw_instant, et_and_utc, next_draw, previous_draw
from shiol_lib.domain.runs import (
    FINISHED_STATUSES,
    IncidentKind,
    MissedKind,
    RetryState,
    RunStatus,
    Trigger,
    failure_streak,
)
from shiol_lib.domain.slots import CronSpec, next_slot, previous_slot, slots_between, to_utc
from shiol_lib.scheduling.job_history import AttemptChain, JobView, classify_chain
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
    "JobSchedule",
    "Missed",
    "Plan",
    "PlannerConfig",
    "RunLike",
    "RunRecord",
    "SlotLike",
    "SlotRecord",
    "default_jobs",
    "plan_runs",
]

UTC = UTC
_ONE_US = timedelta(microseconds=1)


def plan_runs(history: History, at: datetime, config: PlannerConfig | None = None) -> Plan:
    """The plan at instant ``at``: due runs, newly missed slots and drawings, next slots, alerts."""
    config = config or PlannerConfig()
    now = to_utc(at, "at")
    out = _Collector()
    for name, schedule in config.jobs.items():
        view = JobView.build(name, schedule.drawing_linked, history, config, now)
        if schedule.drawing_linked:
            _plan_drawing_job(name, schedule.spec, view, config, now, out)
        else:
            _plan_slot_job(name, schedule.spec, view, config, now, out)
        for incident in _failure_incidents(name, view, config):
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


def _chain_due(job: str, chain: AttemptChain, now: datetime, out: _Collector) -> Due | None:
    if chain.live and chain.due_at is not None and now < chain.due_at:
        out.wakes.append(chain.due_at)  # a retry becomes due then: the plan must be made again
    if not chain.live or chain.slot is None or chain.due_at is None or now < chain.due_at:
        return None
    reason = Trigger.RECOVERY if chain.state == RetryState.RECOVERY else Trigger.RETRY
    return Due(job, chain.slot.astimezone(NEW_YORK), reason, chain.drawing, chain.next_attempt)


# --- planning -------------------------------------------------------------------------------------


@dataclass
class _Collector:
    due: list[Due] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    wakes: list[datetime] = field(default_factory=list)  # instants a later plan may differ at (UTC)
    incidents: list[Incident] = field(default_factory=list)

    def raise_incident(self, incident: Incident) -> None:
        self.incidents.append(incident)
        self.alerts.append(incident.message)

    def miss(self, job: str, slot: datetime, drawing: date | None, kind: MissedKind) -> None:
        self.missed.append(Missed(job, slot.astimezone(NEW_YORK), drawing, kind))


def _plan_slot_job(
    job: str, spec: CronSpec, view: JobView, config: PlannerConfig, now: datetime, out: _Collector
) -> None:
    """A plain cron job: coalesce the pending slots after the watermark, miss the old ones, retry the head."""
    grace = timedelta(seconds=config.grace_s)
    known = {r.slot for r in view.runs if r.slot is not None} | view.recorded_slots
    if view.service_start is None:  # never scheduled: owe the latest slot if it is fresh, report nothing before it
        _owe_latest_fresh_slot(job, spec, view, known, config, now, out)
        return
    watermark = max(known) if known else None
    entered = view.service_start - (grace if not view.clamped else timedelta(0))  # a slot fresh then is owed too
    head = _head_chain(view, watermark, entered, config)
    lower = max(watermark, entered) if watermark is not None else entered
    pending = [s.astimezone(UTC) for s in slots_between(spec, lower, now)]
    if pending:
        _coalesce_pending(job, pending, head, view, config, now, out)
    elif head is not None and not view.busy and (due := _chain_due(job, head, now, out)) is not None:
        out.due.append(due)


def _owe_latest_fresh_slot(
    job: str, spec: CronSpec, view: JobView, known: set[datetime], config: PlannerConfig, now: datetime, out: _Collector
) -> None:
    """A job not in service owes its latest slot when it is within the grace, unknown, and the job is idle."""
    latest = previous_slot(spec, now)
    if latest is None or now - latest > timedelta(seconds=config.grace_s) or view.busy:
        return
    if to_utc(latest, "slot") not in known:
        out.due.append(Due(job, latest, _fresh_reason(now - latest, 1, config), None, 1))


def _head_chain(
    view: JobView, watermark: datetime | None, entered: datetime, config: PlannerConfig
) -> AttemptChain | None:
    """The attempts at the watermark slot, when they are the job's own runs since it entered service."""
    if watermark is None or watermark in view.recorded_slots or watermark <= entered:
        return None
    return classify_chain([r for r in view.runs if r.slot == watermark], config)


def _coalesce_pending(
    job: str,
    pending: list[datetime],
    head: AttemptChain | None,
    view: JobView,
    config: PlannerConfig,
    now: datetime,
    out: _Collector,
) -> None:
    """Miss the pending slots older than the grace (and a retry they superseded); run the fresh ones as one."""
    grace = timedelta(seconds=config.grace_s)
    fresh = [s for s in pending if now - s <= grace]
    for slot in pending:
        if now - slot > grace:
            out.miss(job, slot, None, MissedKind.SLOT)
    if head is not None and head.live and head.slot is not None:  # a retry a newer slot superseded
        out.miss(job, head.slot, head.drawing, MissedKind.SLOT)
    if fresh and not view.busy:
        latest = fresh[-1]
        reason = _fresh_reason(now - latest, len(fresh), config)
        out.due.append(Due(job, latest.astimezone(NEW_YORK), reason, None, 1))


def _plan_drawing_job(
    job: str, spec: CronSpec, view: JobView, config: PlannerConfig, now: datetime, out: _Collector
) -> None:
    """A drawing-linked job: settle each drawing since the watermark; owe the latest passed one."""
    delay = timedelta(seconds=config.draw_delay_s)
    owed = previous_draw(now - delay)
    out.wakes.append(to_utc(draw_instant(draw_after(owed)), "drawing") + delay)  # the next drawing is owed
    start, entered = view.service_start, view.entered_service  # both None, or neither
    if start is None or entered is None:  # never scheduled: owe only the latest drawing, report nothing missed
        if _window_open(owed, now):
            _settle_drawing(job, spec, owed, view, config, now, out)  # a manual run for it settles it
        return
    known = {r.drawing for r in view.runs if r.drawing is not None} | view.recorded_draws
    known = {d for d in known if to_utc(draw_instant(d), "drawing") <= now}  # a future date is not knowledge
    watermark = max(known) if known else None
    first = next_draw(start) if view.clamped else _first_owed(start, delay)
    drawings = []
    if watermark is not None and watermark >= _first_owed(entered, delay):  # else before service
        drawings, first = [watermark], max(first, draw_after(watermark))
    day = first
    while day <= owed:
        drawings.append(day)
        day = draw_after(day)
    for drawing in drawings:
        _settle_drawing(job, spec, drawing, view, config, now, out)


def _settle_drawing(
    job: str, spec: CronSpec, drawing: date, view: JobView, config: PlannerConfig, now: datetime, out: _Collector
) -> None:
    """One drawing of a drawing-linked job: settled, retried, missed, or owed a first run now."""
    runs = [r for r in view.runs if r.drawing == drawing]
    if drawing in view.recorded_draws or any(r.status in (RunStatus.SUCCESS, RunStatus.RUNNING) for r in runs):
        return
    closes_at = to_utc(draw_instant(draw_after(drawing)), "window")
    out.wakes.append(closes_at)  # then the drawing is missed
    chain_runs = [r for r in runs if r.slot is not None]
    if chain_runs:
        _settle_chain(job, drawing, classify_chain(chain_runs, config), closes_at, view, config, now, out)
    elif now >= closes_at:
        slot = _latest_slot_of(spec, drawing, closes_at - _ONE_US)
        if slot is not None:  # a drawing the schedule never asked for is not owed
            out.miss(job, slot, drawing, MissedKind.DRAW)
            out.raise_incident(_missed_draw_incident(job, drawing))
    else:
        _owe_drawing(job, spec, drawing, view, config, now, out)


def _settle_chain(
    job: str,
    drawing: date,
    chain: AttemptChain,
    closes_at: datetime,
    view: JobView,
    config: PlannerConfig,
    now: datetime,
    out: _Collector,
) -> None:
    """A drawing whose runs failed: retry it while its window is open, else miss it (waiting: at the deadline)."""
    if not chain.live or chain.slot is None:
        return
    deadline = to_utc(draw_instant(drawing), "drawing") + timedelta(seconds=config.waiting_deadline_s)
    out.wakes.append(deadline)
    if chain.state == RetryState.WAITING and now >= deadline:
        out.miss(job, chain.slot, drawing, MissedKind.DRAW)
        out.raise_incident(
            _missed_draw_incident(
                job,
                drawing,
                f"{job}: drawing {drawing} missed: results still not published "
                f"{config.waiting_deadline_s / 3600:g} h after the drawing (deadline {et_and_utc(deadline)})",
            )
        )
    elif now >= closes_at:
        out.miss(job, chain.slot, drawing, MissedKind.DRAW)
        out.raise_incident(_missed_draw_incident(job, drawing))
    elif not view.busy and (due := _chain_due(job, chain, now, out)) is not None:
        out.due.append(due)


def _owe_drawing(
    job: str, spec: CronSpec, drawing: date, view: JobView, config: PlannerConfig, now: datetime, out: _Collector
) -> None:
    """A drawing never run, its window open: due at its latest slot passed (``missed-draw`` past the grace)."""
    slots = _slots_of(spec, drawing, now)
    if not slots or view.busy:
        return  # its slot is still ahead, or the job is busy: decide on a later plan
    latest = slots[-1]
    grace = timedelta(seconds=config.grace_s)
    if now - latest > grace:
        reason = Trigger.MISSED_DRAW
    else:
        reason = _fresh_reason(now - latest, sum(1 for s in slots if now - s <= grace), config)
    out.due.append(Due(job, latest.astimezone(NEW_YORK), reason, drawing, 1))


def _failure_incidents(job: str, view: JobView, config: PlannerConfig) -> list[Incident]:
    """The failure streak of ``job`` as an incident keyed by the streak's first run, once it is ``n`` long."""
    n = config.failure_alert_after
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


# --- small helpers --------------------------------------------------------------------------------


def _fresh_reason(age: timedelta, fresh_slots: int, config: PlannerConfig) -> Trigger:
    """``on-time``: the only pending slot within the grace, at most ``on_time_s`` old; else ``catch-up``."""
    return Trigger.ON_TIME if fresh_slots == 1 and age.total_seconds() <= config.on_time_s else Trigger.CATCH_UP


def _slots_of(spec: CronSpec, drawing: date, until: datetime) -> list[datetime]:
    """The slots whose drawing is ``drawing`` (from its instant to the next drawing's), up to ``until``, UTC."""
    start = to_utc(draw_instant(drawing), "drawing")
    end = min(until, to_utc(draw_instant(draw_after(drawing)), "drawing") - _ONE_US)
    return [s.astimezone(UTC) for s in slots_between(spec, start - _ONE_US, end)]


def _latest_slot_of(spec: CronSpec, drawing: date, until: datetime) -> datetime | None:
    slots = _slots_of(spec, drawing, until)
    return slots[-1] if slots else None


def _first_owed(service_start: datetime, delay: timedelta) -> date:
    """The first drawing a job in service since ``service_start`` owes: the one owed then, if its window was open."""
    owed_then = previous_draw(service_start - delay)
    return owed_then if _window_open(owed_then, service_start) else next_draw(service_start - delay)


def _window_open(drawing: date, now: datetime) -> bool:
    return now < to_utc(draw_instant(draw_after(drawing)), "window")


def _missed_draw_incident(job: str, drawing: date, message: str | None = None) -> Incident:
    nxt = draw_after(drawing)
    message = message or (
        f"{job}: drawing {drawing} missed: no successful run before the next drawing ({et_and_utc(draw_instant(nxt))})"
    )
    return Incident(f"{job}:{IncidentKind.MISSED_DRAW}:{drawing.isoformat()}", IncidentKind.MISSED_DRAW, job, message)
