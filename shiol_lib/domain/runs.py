"""The vocabulary of the run history: run and step statuses, missed kinds, the failure-streak and retry rules.

One definition each, shared by the store, the planner, monitoring and the archive. The statuses are
``StrEnum`` members: they compare equal to (and serialize as) their plain string values, so rows and
manifests written before this module existed read back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum


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

    @property
    def is_finished(self) -> bool:
        """Whether a run with this status has ended (``running``, ``refused`` and ``missed`` rows never did)."""
        return self in FINISHED_STATUSES

    @property
    def is_failure(self) -> bool:
        """Whether this status counts as a failure of the job (towards its failure alert and a retry)."""
        return self in FAILURE_STATUSES


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


class IncidentKind(StrEnum):
    """What an incident of the scheduler stands for (the ``kind`` of an incident and of its alerts)."""

    MISSED_DRAW = "missed-draw"  # a drawing never got its pipeline
    FAILURES = "failures"  # a job's runs failed N times in a row
    DEFINITIONS = "definitions"  # the jobs file does not validate: the last good definitions run


class Trigger(StrEnum):
    """Why a run started: a person (``manual``, ``rerun``) or the planner's reason for a scheduled run."""

    MANUAL = "manual"
    RERUN = "rerun"
    ON_TIME = "on-time"
    CATCH_UP = "catch-up"
    MISSED_DRAW = "missed-draw"
    RETRY = "retry"
    RECOVERY = "recovery"

    @property
    def is_manual(self) -> bool:
        """A run a person started: it never moves a job's service start and is never retried."""
        return self in (Trigger.MANUAL, Trigger.RERUN)


# The triggers the scheduler's planner gives (its reasons), in the order the plan explains them.
SCHEDULED_TRIGGERS = (Trigger.ON_TIME, Trigger.CATCH_UP, Trigger.MISSED_DRAW, Trigger.RETRY, Trigger.RECOVERY)


class ErrorClass(StrEnum):
    """What kind of failure ended a run or a step (the ``error_class`` of a row and a manifest).

    Rows and manifests written by earlier versions may hold other values (an exception's name); readers
    keep them as plain strings.
    """

    CELL_ERROR = "cell error"  # a cell raised
    KERNEL_DEATH = "kernel death"
    TIMEOUT = "timeout"
    PAPERMILL = "papermill"  # papermill itself failed (no output notebook)
    MEMORY = "memory"  # the step went over SHIOL_STEP_MEMORY_MB
    INTERRUPTED = "interrupted"  # SIGTERM
    CRASHED = "crashed"  # the job process died
    WAITING = "waiting"  # the drawing's result is not published yet
    FETCH = "fetch"  # no source answered
    VALIDATION = "validation"  # records rejected
    ARCHIVE = "archive"  # the archive could not be written
    BUSY = "busy"  # another run of the job held its lock
    CONFIGURATION = "configuration"
    STORE = "store"
    JOB_PROCESS = "job process"  # the job process exited without a result
    DISK_FULL = "disk_full"  # no space left on the device of the store or the archive
    ENVIRONMENT = "environment"  # strict job: the installed packages differ from its last successful run


class RetryState(StrEnum):
    """What comes after a finished attempt, by the retry policy (:func:`retry_outlook`)."""

    RETRY = "retry"
    RECOVERY = "recovery"
    WAITING = "waiting"
    EXHAUSTED = "exhausted"
    NONE = "none"

    @property
    def has_next_attempt(self) -> bool:
        """Whether another attempt is due (at ``RetryOutlook.due_at``)."""
        return self in (RetryState.RETRY, RetryState.RECOVERY, RetryState.WAITING)


class ExitCode(IntEnum):
    """The documented exit codes of ``shiol`` and of the job process (README, "Exit codes")."""

    OK = 0
    ERROR = 1  # unexpected
    USAGE = 2  # usage or configuration
    REJECTED = 3  # records rejected by validation
    CONFLICT = 4  # a source disagrees with a stored drawing
    STORE = 5  # the store could not be opened, stayed locked, or is missing for a read
    RUN_FAILED = 6  # a run failed, timed out or is waiting
    ARCHIVE = 7  # the archive could not be written or read
    MISMATCH = 8  # a check found a difference
    BUSY = 9  # the job is already running
    NO_SOURCE = 10  # update-data: no network source answered (nothing new could be learned)


# Statuses of a run that has ended (``running``, ``refused`` and ``missed`` rows never did).
FINISHED_STATUSES = frozenset(
    {
        RunStatus.SUCCESS,
        RunStatus.FAILED,
        RunStatus.TIMEOUT,
        RunStatus.CRASHED,
        RunStatus.WAITING,
        RunStatus.SKIPPED,
        RunStatus.INTERRUPTED,
    }
)
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


@dataclass(frozen=True)
class RetryOutlook:
    """What the retry policy makes of one finished attempt (see :func:`retry_outlook`)."""

    state: RetryState
    due_at: datetime | None  # when the next attempt is due (retry, recovery, waiting)
    attempts_used: int  # attempts that count towards the budget (``waiting`` ones are free)
    max_attempts: int


def retry_outlook(
    status: RunStatus | str, attempt: int, finished_at: datetime, backoff_s: Sequence[float], *, free_attempts: int = 0
) -> RetryOutlook:
    """The next attempt of a scheduled run that ended ``status``, by the retry policy of DESIGN.md.

    The first attempt plus one retry per delay of ``backoff_s`` (``SHIOL_RETRY_BACKOFF_S``): a failed or
    timed-out attempt retries ``backoff_s[n - 1]`` after it finished (``n`` the attempts used so far,
    the last delay repeating); a crashed or interrupted one is due at once (recovery); one that ended
    ``waiting`` (results not published) retries on the same backoff and is free, as are the
    ``free_attempts`` earlier ``waiting`` attempts of its slot. After the last attempt: ``exhausted``.
    Other statuses have no next attempt (``none``). The scheduler's planner applies the same rules.
    """
    if not backoff_s or min(backoff_s) <= 0:
        raise ValueError(f"the retry backoff needs at least one positive delay, got {tuple(backoff_s)}")
    max_attempts = 1 + len(backoff_s)
    used = attempt - free_attempts

    def delay(n: int) -> timedelta:
        return timedelta(seconds=float(backoff_s[min(max(n, 1), len(backoff_s)) - 1]))

    if status == RunStatus.WAITING:
        return RetryOutlook(RetryState.WAITING, finished_at + delay(attempt), used - 1, max_attempts)
    if status not in (RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.CRASHED, RunStatus.INTERRUPTED):
        return RetryOutlook(RetryState.NONE, None, used, max_attempts)
    if used >= max_attempts:
        return RetryOutlook(RetryState.EXHAUSTED, None, used, max_attempts)
    if status in (RunStatus.CRASHED, RunStatus.INTERRUPTED):
        return RetryOutlook(RetryState.RECOVERY, finished_at, used, max_attempts)
    return RetryOutlook(RetryState.RETRY, finished_at + delay(used), used, max_attempts)
