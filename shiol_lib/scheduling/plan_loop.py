"""The scheduler's planning thread: plans from the store off the event loop, keeps the last plan in memory.

Rocketry's conditions and the health endpoint run in the scheduler's asyncio loop, so they must never
wait for the store. :class:`PlanLoop` makes a plan in its own thread, keeps the last one and when it
was made, then sleeps until the next plan is owed:

- at the plan's ``wake_at``, the first instant at which the plan can change by the clock alone (a
  next slot, a retry's due time, a drawing owed or missed);
- every cycle while something is due;
- at once when woken (:meth:`PlanLoop.wake`: a run just finished) or when the store's files change
  (another process ran a job, wrote a heartbeat or a record: ``changes`` is polled once a cycle, a
  ``stat`` of the files and nothing more);
- and at the latest ``max_wait_s`` after the last plan, for what no file change shows: a run of
  another process whose heartbeat goes stale, and a plan age that ``/healthz`` can trust.

Nothing is re-planned on a fixed cadence shorter than that. A plan that fails (a locked store, a
broken history) is logged and tried again next cycle; the last good plan stays, and ages.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shiol_lib.scheduling.plans import Plan

log = logging.getLogger(__name__)

MAX_WAIT_S = 300.0  # the longest the loop ever sleeps between two plans
MIN_WAIT_S = 0.05  # never spin

Clock = Callable[[], datetime]
Sleep = Callable[[float], bool]  # sleeps up to n seconds; True when woken early


def file_signature(paths: Sequence[Path]) -> Hashable:
    """Modification time and size of each file (None when missing): a change means another write."""
    signature: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            signature.append(None)
        else:
            signature.append((info.st_mtime_ns, info.st_size))
    return tuple(signature)


@dataclass(frozen=True)
class PlanSnapshot:
    """A plan and when it was made (``time.monotonic()``)."""

    plan: Plan
    made_at: float

    def age_s(self) -> float:
        """Seconds since the plan was made."""
        return time.monotonic() - self.made_at


class PlanLoop:
    """Makes plans in a background thread; :meth:`latest` answers from memory.

    Args:
        make_plan: makes a plan now (reads the store; may block or raise).
        cycle_s: the scheduler cycle: the longest a due run, a wake-up or a store change waits for a new plan.
        on_plan: called in the thread with each new plan (records what it missed, raises alerts);
            an error there is logged and does not discard the plan.
        max_wait_s: the longest sleep between two plans when nothing happens.
        changes: a cheap signature of the store's files (:func:`file_signature`), polled once a cycle
            while the loop sleeps; a new value wakes it. None: only the clock and :meth:`wake` do.
        clock: the current instant (tests drive it).
        sleep: sleeps up to the given seconds and says whether :meth:`wake` cut it short (tests drive it).
    """

    def __init__(
        self,
        make_plan: Callable[[], Plan],
        *,
        cycle_s: float,
        on_plan: Callable[[Plan], None] | None = None,
        max_wait_s: float = MAX_WAIT_S,
        changes: Callable[[], Hashable] | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._make_plan = make_plan
        self._on_plan = on_plan
        self._cycle_s = cycle_s
        self._max_wait_s = max_wait_s
        self._changes = changes
        self._clock = clock or (lambda: datetime.now(UTC))
        self._latest: PlanSnapshot | None = None
        self._wake = threading.Event()
        self._sleep = sleep or self._wake.wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the planning thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shiol-planner", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Make no more plans; wait up to ``timeout_s`` for a plan in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def wake(self) -> None:
        """Make a new plan now (something changed the store)."""
        self._wake.set()

    def latest(self) -> PlanSnapshot | None:
        """The last plan made, or None before the first one."""
        return self._latest

    def age_s(self) -> float | None:
        """Seconds since the last plan was made, or None before the first one."""
        latest = self._latest
        return None if latest is None else latest.age_s()

    def publish(self, plan: Plan) -> None:
        """Keep ``plan`` as the latest (a caller that planned itself, e.g. right after a run)."""
        self._latest = PlanSnapshot(plan, time.monotonic())

    def run_once(self) -> Plan | None:
        """Make, keep and hand on one plan; None (logged) when planning failed."""
        try:
            plan = self._make_plan()
        except Exception:  # noqa: BLE001 (the thread must survive a locked or broken store)
            log.exception("planning failed; will try again next cycle")
            return None
        self.publish(plan)
        if self._on_plan is not None:
            try:
                self._on_plan(plan)
            except Exception:  # noqa: BLE001
                log.exception("recording the plan's missed slots and alerts failed; will try again")
        return plan

    def wait_s(self, plan: Plan | None, now: datetime | None = None) -> float:
        """How long to sleep after ``plan`` if nothing wakes the loop: one cycle while due, else until its wake-up."""
        if plan is None or plan.due:
            return self._cycle_s
        if plan.wake_at is None:
            return self._max_wait_s
        until = (plan.wake_at - (now or self._clock())).total_seconds()
        return min(self._max_wait_s, max(MIN_WAIT_S, until))

    def run_cycle(self) -> tuple[Plan | None, str]:
        """Make one plan, then sleep until the next is owed; returns the plan and what ended the sleep.

        What ended it: ``"clock"`` (the wake-up instant, a cycle while due, or ``max_wait_s``),
        ``"woken"``, ``"store changed"`` or ``"stopped"``.
        """
        plan = self.run_once()
        before = self._changes() if self._changes is not None else None  # after on_plan's own writes
        deadline = self._clock() + timedelta(seconds=self.wait_s(plan))
        reason = "clock"
        while True:
            if self._stop.is_set():
                reason = "stopped"
                break
            remaining = (deadline - self._clock()).total_seconds()
            if remaining <= 0:
                break
            if self._sleep(remaining if self._changes is None else min(remaining, self._cycle_s)):
                reason = "stopped" if self._stop.is_set() else "woken"
                break
            if self._changes is not None and self._changes() != before:
                reason = "store changed"
                break
        self._wake.clear()
        return plan, reason

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_cycle()
