"""The vocabulary of the run history: run and step statuses, missed kinds, and the failure-streak rule.

One definition each, shared by the store, the planner, monitoring and the archive. The statuses are
``StrEnum`` members: they compare equal to (and serialize as) their plain string values, so rows and
manifests written before this module existed read back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class RunStatus(StrEnum):
    """The status of one job run (a ``runs`` row and a manifest)."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    WAITING = "waiting"  # the drawing's result was not published yet: retried, not a failure
    SKIPPED = "skipped"
    REFUSED = "refused"  # another run of the job held its lock: never ran
    INTERRUPTED = "interrupted"  # stopped by SIGTERM: the kernel was killed, the run closed
    MISSED = "missed"


class StepStatus(StrEnum):
    """The status of one step (notebook) of a run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    WAITING = "waiting"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"  # the job process died while the step ran


class MissedKind(StrEnum):
    """What a missed entry stands for: a schedule slot, or a drawing that never got its pipeline."""

    SLOT = "slot"
    DRAW = "draw"


# Statuses of a run that has ended (``running``, ``refused`` and ``missed`` rows never did).
FINISHED_STATUSES = frozenset({
    RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.CRASHED, RunStatus.WAITING,
    RunStatus.SKIPPED, RunStatus.INTERRUPTED,
})
# Finished statuses that count as a failure of the job (towards its failure alert).
FAILURE_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.CRASHED})


def failure_streak(statuses_newest_first: Iterable[str]) -> int:
    """How many of a job's runs failed in a row, counting back from the newest finished one.

    ``statuses_newest_first`` are the job's run statuses, newest first (by start time, then attempt).
    Unfinished ones (``running``, ``refused``, ``missed``) are skipped; the streak ends at the first
    finished status that is not a failure.
    """
    streak = 0
    for status in statuses_newest_first:
        if status not in FINISHED_STATUSES:
            continue
        if status not in FAILURE_STATUSES:
            break
        streak += 1
    return streak


def parse_status(value: str, kind: type[RunStatus] | type[StepStatus] = RunStatus) -> RunStatus | StepStatus:
    """``value`` as a member of ``kind``; raises ``ValueError`` naming the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValueError(f"status {value!r} is not one of {allowed}") from None
