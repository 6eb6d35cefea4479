"""The scheduler's planning thread: plans from the store off the event loop, keeps the last plan in memory.

Rocketry's conditions and the health endpoint run in the scheduler's asyncio loop, so they must never
wait for the store. :class:`PlanLoop` makes a plan in its own thread, keeps the last one and when it
was made, and makes the next one at the plan's ``wake_at`` (a next slot, a retry's due time, a
drawing owed or missed), every cycle while something is due, when woken (a run just finished), and at
least every ``refresh_s`` seconds. A plan that fails (a locked store, a broken history) is logged and
tried again next cycle; the last good plan stays, and ages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shiol_lib.scheduling.plans import Plan

log = logging.getLogger(__name__)

REFRESH_S = 30.0  # re-plan at least this often (runs of other processes, stale heartbeats)
MIN_WAIT_S = 0.05  # never spin


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
        cycle_s: the scheduler cycle: the longest a due run or a wake-up waits for a new plan.
        on_plan: called in the thread with each new plan (records what it missed, raises alerts);
            an error there is logged and does not discard the plan.
        refresh_s: re-plan at least this often.
    """

    def __init__(self, make_plan: Callable[[], Plan], *, cycle_s: float,
                 on_plan: Callable[[Plan], None] | None = None, refresh_s: float = REFRESH_S) -> None:
        self._make_plan = make_plan
        self._on_plan = on_plan
        self._cycle_s = cycle_s
        self._refresh_s = refresh_s
        self._latest: PlanSnapshot | None = None
        self._wake = threading.Event()
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
        """How long to wait before the next plan after ``plan``."""
        if plan is None or plan.due:
            return self._cycle_s
        if plan.wake_at is None:
            return self._refresh_s
        until = (plan.wake_at - (now or datetime.now(UTC))).total_seconds()
        return min(self._refresh_s, max(MIN_WAIT_S, until))

    def _run(self) -> None:
        while not self._stop.is_set():
            plan = self.run_once()
            self._wake.wait(self.wait_s(plan))
            self._wake.clear()
