"""The planner's rules for drawing-linked jobs (after-drawing jobs, the pipeline among them).

Which drawing a job owes, and whether it is settled, retried, missed or due a first run; the rules
are in :mod:`shiol_lib.scheduling.planner`'s docstring. Nothing here depends on the job's name: every
job whose :class:`~shiol_lib.scheduling.plans.JobSchedule` is ``drawing_linked`` is planned alike,
with its own delay (``draw_delay_s``), grace, backoff and catch-up policy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shiol_lib.domain.draw_calendar import NEW_YORK, draw_after, draw_instant, et_and_utc, next_draw, previous_draw
from shiol_lib.domain.runs import IncidentKind, MissedKind, RetryState, RunStatus, Trigger
from shiol_lib.domain.slots import CatchUp, CronSpec, next_slot, slots_between, to_utc
from shiol_lib.scheduling.job_history import (
    AttemptChain,
    JobPolicy,
    JobView,
    PlanCollector,
    classify_chain,
    fresh_reason,
)
from shiol_lib.scheduling.plans import Due, Incident, PlannerConfig

_ONE_US = timedelta(microseconds=1)


def plan_drawing_job(
    job: str, spec: CronSpec, view: JobView, policy: JobPolicy, config: PlannerConfig, now: datetime, out: PlanCollector
) -> None:
    """A drawing-linked job: settle each drawing since the watermark; owe the latest passed one."""
    delay = timedelta(seconds=policy.draw_delay_s)
    owed = previous_draw(now - delay)
    out.wakes.append(to_utc(draw_instant(draw_after(owed)), "drawing") + delay)  # the next drawing is owed
    rules = _Rules(job, spec, view, policy, config, now, out)
    start, entered = view.service_start, view.entered_service  # both None, or neither
    if start is None or entered is None:  # never scheduled: owe only the latest drawing, report nothing missed
        if _window_open(owed, now):
            rules.settle(owed)  # a manual run for it settles it
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
        rules.settle(drawing)


class _Rules:
    """The drawings of one job at one instant: each settled, retried, missed or owed a first run."""

    def __init__(
        self,
        job: str,
        spec: CronSpec,
        view: JobView,
        policy: JobPolicy,
        config: PlannerConfig,
        now: datetime,
        out: PlanCollector,
    ) -> None:
        self.job, self.spec, self.view, self.policy, self.config, self.now, self.out = (
            job,
            spec,
            view,
            policy,
            config,
            now,
            out,
        )

    def settle(self, drawing: date) -> None:
        """One drawing: settled, retried, missed, or owed a first run now."""
        runs = [r for r in self.view.runs if r.drawing == drawing]
        if drawing in self.view.recorded_draws or any(r.status in (RunStatus.SUCCESS, RunStatus.RUNNING) for r in runs):
            return
        closes_at = to_utc(draw_instant(draw_after(drawing)), "window")
        self.out.wakes.append(closes_at)  # then the drawing is missed
        chain_runs = [r for r in runs if r.slot is not None]
        if chain_runs:
            self._settle_chain(drawing, classify_chain(chain_runs, self.policy.retry_backoff_s), closes_at)
        elif self.now >= closes_at:
            slot = _latest_slot_of(self.spec, drawing, closes_at - _ONE_US)
            if slot is not None:  # a drawing the schedule never asked for is not owed
                self._miss(slot, drawing)
        else:
            self._owe(drawing, closes_at)

    def _settle_chain(self, drawing: date, chain: AttemptChain, closes_at: datetime) -> None:
        """A drawing whose runs failed: retry it while its window is open, else miss it (waiting: at the deadline)."""
        if not chain.live or chain.slot is None:
            return
        deadline = to_utc(draw_instant(drawing), "drawing") + timedelta(seconds=self.config.waiting_deadline_s)
        self.out.wakes.append(deadline)
        if chain.state == RetryState.WAITING and self.now >= deadline:
            hours = self.config.waiting_deadline_s / 3600
            self._miss(
                chain.slot,
                drawing,
                f"{self.job}: drawing {drawing} missed: results still not published "
                f"{hours:g} h after the drawing (deadline {et_and_utc(deadline)})",
            )
        elif self.now >= closes_at:
            self._miss(chain.slot, drawing)
        elif self.view.can_start and (due := self.out.chain_due(self.job, chain, self.now)) is not None:
            self.out.due.append(due)

    def _owe(self, drawing: date, closes_at: datetime) -> None:
        """A drawing never run, its window open: due at its latest slot passed (``missed-draw`` past the grace).

        ``catch_up = "none"``: due only at an on-time slot; a drawing whose latest slot is stale waits
        for a later slot of its window, and is missed now when none remains.
        """
        slots = _slots_of(self.spec, drawing, self.now)
        if not slots:
            return  # its slot is still ahead
        latest = slots[-1]
        grace = timedelta(seconds=self.policy.grace_s)
        if self.policy.catch_up == CatchUp.NONE:
            if (self.now - latest).total_seconds() > min(self.policy.grace_s, self.config.on_time_s):
                if to_utc(next_slot(self.spec, self.now), "slot") >= closes_at:
                    self._miss(latest, drawing)
                return
            reason = Trigger.ON_TIME
        elif self.now - latest > grace:
            reason = Trigger.MISSED_DRAW
        else:
            fresh = sum(1 for s in slots if self.now - s <= grace)
            reason = fresh_reason((self.now - latest).total_seconds(), fresh, self.config)
        if self.view.can_start:  # else: busy or held by a writer, decide on a later plan
            self.out.due.append(Due(self.job, latest.astimezone(NEW_YORK), reason, drawing, 1))

    def _miss(self, slot: datetime, drawing: date, message: str | None = None) -> None:
        self.out.miss(self.job, slot, drawing, MissedKind.DRAW)
        self.out.raise_incident(missed_draw_incident(self.job, drawing, message))


def missed_draw_incident(job: str, drawing: date, message: str | None = None) -> Incident:
    """The incident of ``job`` missing ``drawing`` (keyed by the job and the drawing)."""
    nxt = draw_after(drawing)
    message = message or (
        f"{job}: drawing {drawing} missed: no successful run before the next drawing ({et_and_utc(draw_instant(nxt))})"
    )
    return Incident(f"{job}:{IncidentKind.MISSED_DRAW}:{drawing.isoformat()}", IncidentKind.MISSED_DRAW, job, message)


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
