"""One job as the planner reads it: its effective policy, its runs normalized to UTC, its attempt chains.

:func:`job_policy` fills a job's :class:`~shiol_lib.scheduling.plans.JobSchedule` with the config's
values. A chain is the attempts of one slot (or one drawing); :func:`classify_chain` says what comes
next by the one retry policy of the workbench, :func:`shiol_lib.domain.runs.retry_outlook`, on the
job's own backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from shiol_lib.domain.draw_calendar import NEW_YORK, previous_draw
from shiol_lib.domain.runs import MissedKind, RetryState, RunStatus, Trigger, retry_outlook
from shiol_lib.domain.slots import CatchUp, ScheduleError, parse_cron, to_utc
from shiol_lib.scheduling.plans import Due, History, Incident, JobSchedule, Missed, PlannerConfig, RunLike

_FAILING = (RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.CRASHED, RunStatus.INTERRUPTED, RunStatus.WAITING)


@dataclass(frozen=True)
class JobPolicy:
    """One job's effective policy: its :class:`JobSchedule` with the config's values where it has None."""

    catch_up: CatchUp
    max_catch_up: int
    grace_s: float
    retry_backoff_s: tuple[float, ...]  # () for no retry
    failure_alert_after: int
    draw_delay_s: float
    writes_store: bool

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one retry per backoff delay."""
        return 1 + len(self.retry_backoff_s)


def job_policy(config: PlannerConfig, job: str) -> JobPolicy:
    """``job``'s effective policy in ``config`` (a job it does not plan: the config's values, not a writer)."""
    s = config.jobs.get(job) or JobSchedule(parse_cron("0 0 * * *"), writes_store=job in config.store_writers)
    return JobPolicy(
        CatchUp(s.catch_up),
        config.max_catch_up if s.max_catch_up is None else s.max_catch_up,
        config.grace_s if s.grace_s is None else s.grace_s,
        config.retry_backoff_s if s.retry_backoff_s is None else s.retry_backoff_s,
        config.failure_alert_after if s.failure_alert_after is None else s.failure_alert_after,
        config.draw_delay_s if s.draw_delay_s is None else s.draw_delay_s,
        s.writes_store,
    )


@dataclass(frozen=True)
class JobRun:
    """One run of a job, normalized: instants in UTC, the effective status, the drawing it is for."""

    run_id: str
    slot: datetime | None  # UTC
    status: RunStatus  # effective: a `running` row with a stale heartbeat reads as `crashed`
    raw_status: RunStatus
    started: datetime  # UTC
    finished: datetime  # UTC: finished_at, else the last heartbeat, else started_at
    attempt: int
    drawing: date | None
    scheduled: bool  # started by the schedule (not `manual` or `rerun`)


@dataclass
class JobView:
    """What the planner knows about one job: its runs, recorded missed entries and dead letters, its service."""

    runs: list[JobRun]  # oldest first, `refused` rows left out (they never ran)
    recorded_slots: set[datetime]  # missed entries and dead letters
    recorded_draws: set[date]
    busy: bool  # a run of this job is in flight
    in_service: datetime | None = None  # the scheduler's first start (UTC)
    since: datetime | None = None  # where the history begins (UTC)
    held: bool = False  # another job that writes the store has a run in flight (set by the planner)

    @property
    def can_start(self) -> bool:
        """Whether a run of the job may start now: none of its own in flight, no other writer's holding it."""
        return not self.busy and not self.held

    @classmethod
    def build(cls, job: str, linked: bool, history: History, config: PlannerConfig, now: datetime) -> JobView:
        """The view of ``job`` in ``history`` at ``now`` (``linked``: each run is for a drawing)."""
        runs = sorted(
            (
                normalize_run(r, linked, config, now)
                for r in history.runs
                if r.job == job and r.status != RunStatus.REFUSED
            ),
            key=lambda r: (r.started, r.attempt, r.run_id),
        )
        slots: set[datetime] = set()
        draws: set[date] = set()
        for record in [*history.missed, *history.dead_letters]:
            if record.job != job:
                continue
            slot = to_utc(record.slot, f"slot of the recorded {job} entry") if record.slot is not None else None
            if slot is not None:
                slots.add(slot)
            drawing = record.draw_date or (previous_draw(slot) if slot is not None and linked else None)
            if drawing is not None:
                draws.add(drawing)
        started = to_utc(history.scheduler_started, "scheduler_started") if history.scheduler_started else None
        since = to_utc(history.since, "since") if history.since is not None else None
        return cls(runs, slots, draws, any(r.status == RunStatus.RUNNING for r in runs), started, since)

    @property
    def entered_service(self) -> datetime | None:
        """The scheduler's first start or the job's first scheduled run (from its slot), or None: never a manual run."""
        starts = [min(r.started, r.slot or r.started) for r in self.runs if r.scheduled]
        if self.in_service is not None:
            starts.append(self.in_service)
        return min(starts) if starts else None

    @property
    def service_start(self) -> datetime | None:
        """Where reporting starts (nothing before is missed): the service start, or the history's start if later."""
        entered = self.entered_service
        return entered if entered is None or self.since is None else max(entered, self.since)

    @property
    def clamped(self) -> bool:
        """Whether the history begins after the service start: then only what it holds is reported."""
        return self.since is not None and self.entered_service is not None and self.entered_service < self.since


def normalize_run(run: RunLike, linked: bool, config: PlannerConfig, now: datetime) -> JobRun:
    """``run`` in UTC with its effective status (a silent ``running`` row reads ``crashed``); checks its status."""
    what = f"run {run.run_id!r}"
    try:
        raw_status = RunStatus(run.status)
    except ValueError:
        raise ScheduleError(
            f"{what} has unknown status {run.status!r}; expected one of {sorted(m.value for m in RunStatus)}"
        ) from None
    started = to_utc(run.started_at, f"started_at of {what}")
    slot = to_utc(run.slot, f"slot of {what}") if run.slot is not None else None
    heartbeat = to_utc(run.heartbeat_at, f"heartbeat_at of {what}") if run.heartbeat_at is not None else None
    finished = to_utc(run.finished_at, f"finished_at of {what}") if run.finished_at is not None else None
    status = raw_status
    if status == RunStatus.RUNNING and (now - (heartbeat or started)).total_seconds() > config.heartbeat_stale_s:
        status = RunStatus.CRASHED
    drawing = run.draw_date if run.draw_date is not None else (previous_draw(slot) if linked and slot else None)
    return JobRun(
        run.run_id,
        slot,
        status,
        raw_status,
        started,
        finished or heartbeat or started,
        int(run.attempt),
        drawing,
        not is_manual_trigger(run.trigger),
    )


def is_manual_trigger(trigger: str) -> bool:
    """Whether a person started the run (``manual``, ``rerun``): it never moves a job's service start."""
    try:
        return Trigger(trigger).is_manual
    except ValueError:
        return False


@dataclass(frozen=True)
class AttemptChain:
    """The attempts of one slot (or drawing): what the retry policy makes of the last one."""

    state: RetryState  # ``none`` for a chain settled or in flight
    slot: datetime | None
    drawing: date | None
    next_attempt: int
    due_at: datetime | None = None

    @property
    def live(self) -> bool:
        """Whether another attempt is due (a retry, a recovery, or a check for results)."""
        return self.state.has_next_attempt


def classify_chain(chain: Sequence[JobRun], backoff_s: Sequence[float]) -> AttemptChain:
    """The state of the attempts of one slot (or one drawing), by the one retry policy (:func:`retry_outlook`).

    ``backoff_s`` is the job's own; empty, a failed attempt is the last (``exhausted``).
    """
    last = chain[-1]
    next_attempt = max(r.attempt for r in chain) + 1
    settled = any(r.status == RunStatus.SUCCESS for r in chain) or last.status in (RunStatus.SKIPPED, RunStatus.MISSED)
    if settled or last.status == RunStatus.RUNNING:
        return AttemptChain(RetryState.NONE, last.slot, last.drawing, next_attempt)
    free = sum(1 for r in chain[:-1] if r.status == RunStatus.WAITING)  # waiting attempts are free
    if not backoff_s:  # no retry: a failed (or waiting) attempt was the only one
        state = RetryState.EXHAUSTED if last.status in _FAILING else RetryState.NONE
        return AttemptChain(state, last.slot, last.drawing, next_attempt)
    outlook = retry_outlook(last.status, last.attempt, last.finished, backoff_s, free_attempts=free)
    return AttemptChain(outlook.state, last.slot, last.drawing, next_attempt, outlook.due_at)


@dataclass
class PlanCollector:
    """What planning the jobs gathers: due runs, missed entries, alerts, wake instants, incidents."""

    due: list[Due] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    wakes: list[datetime] = field(default_factory=list)  # instants a later plan may differ at (UTC)
    incidents: list[Incident] = field(default_factory=list)

    def raise_incident(self, incident: Incident) -> None:
        """Open ``incident`` (its message is an alert)."""
        self.incidents.append(incident)
        self.alerts.append(incident.message)

    def miss(self, job: str, slot: datetime, drawing: date | None, kind: MissedKind) -> None:
        """Report ``slot`` (or ``drawing``) of ``job`` missed: it will not be run."""
        self.missed.append(Missed(job, slot.astimezone(NEW_YORK), drawing, kind))

    def chain_due(self, job: str, chain: AttemptChain, now: datetime) -> Due | None:
        """The next attempt of ``chain`` when it is due at ``now`` (else None, and a wake at its due time)."""
        if chain.live and chain.due_at is not None and now < chain.due_at:
            self.wakes.append(chain.due_at)  # a retry becomes due then: the plan must be made again
        if not chain.live or chain.slot is None or chain.due_at is None or now < chain.due_at:
            return None
        reason = Trigger.RECOVERY if chain.state == RetryState.RECOVERY else Trigger.RETRY
        return Due(job, chain.slot.astimezone(NEW_YORK), reason, chain.drawing, chain.next_attempt)


def fresh_reason(age_s: float, fresh_slots: int, config: PlannerConfig) -> Trigger:
    """``on-time``: the only pending slot within the grace, at most ``on_time_s`` old; else ``catch-up``."""
    return Trigger.ON_TIME if fresh_slots == 1 and age_s <= config.on_time_s else Trigger.CATCH_UP
