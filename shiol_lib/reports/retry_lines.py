"""What comes after each unsuccessful run, in words, for the dashboard: from the archived manifests alone.

A scheduled run's attempts form a chain: the runs of one job for one drawing (a drawing-linked job
such as the pipeline) or one slot. :func:`retry_lines` reads the chains the manifests record and
applies the retry policy (:func:`shiol_lib.domain.runs.retry_outlook`, the rules the scheduler's
planner follows, with the job's own ``retries`` or else the ``SHIOL_RETRY_BACKOFF_S`` delays): the next
retry's time in New York and UTC, "no retry left (attempt 3 of 3)", or the run that superseded it (its
own next attempt, or a run for a newer slot or drawing, after which the planner records the old one
missed instead of retrying).
Manual runs are never retried by the scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shiol_lib.archive.manifest import Manifest
from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.runs import RetryOutlook, RetryState, RunStatus, retry_outlook

# Statuses whose run gets a retry line (success and running ones need none; refused ones never ran).
_RETRIED = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.CRASHED, RunStatus.INTERRUPTED, RunStatus.WAITING})


@dataclass(frozen=True)
class RetryLine:
    """One run's retry outlook: the sentence shown, and the run that superseded it, if one did."""

    text: str
    superseded_by: str | None = None
    due_at: datetime | None = None


def format_instant(instant: datetime) -> str:
    """An instant as New York time with its UTC beside it: ``2024-07-01 00:04 EDT (2024-07-01 04:04 UTC)``."""
    local, utc = instant.astimezone(NEW_YORK), instant.astimezone(UTC)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({utc:%Y-%m-%d %H:%M} UTC)"


def _chain_key(manifest: Manifest) -> tuple[str, str]:
    if manifest.draw_date is not None:
        return manifest.job, f"draw {manifest.draw_date.isoformat()}"
    return manifest.job, f"slot {manifest.slot.isoformat() if manifest.slot else ''}"


def _order(manifest: Manifest) -> tuple[datetime, int, str]:
    return manifest.started_at, manifest.attempt, manifest.run_id


def retry_lines(
    manifests: Iterable[Manifest],
    backoff_s: Sequence[float],
    *,
    now: datetime | None = None,
    job_backoff_s: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, RetryLine]:
    """Run id -> its :class:`RetryLine`, for every failed, timed-out, crashed, interrupted or waiting run.

    ``backoff_s`` is the settings' retry delays; ``job_backoff_s`` a job's own (its definition's ``retries``),
    which the planner follows for that job instead.
    """
    job_backoff_s = job_backoff_s or {}
    now = now or datetime.now(UTC)
    every = sorted(manifests, key=_order)
    scheduled = [m for m in every if m.slot is not None and m.status != RunStatus.REFUSED]
    chains: dict[tuple[str, str], list[Manifest]] = {}
    for manifest in scheduled:
        chains.setdefault(_chain_key(manifest), []).append(manifest)
    lines = {}
    for manifest in every:
        if manifest.status not in _RETRIED:
            continue
        if manifest.slot is None:
            lines[manifest.run_id] = RetryLine("no automatic retry (a manual run)")
            continue
        delays = job_backoff_s.get(manifest.job, backoff_s)
        lines[manifest.run_id] = _line(manifest, chains[_chain_key(manifest)], scheduled, delays, now)
    return lines


def _line(
    manifest: Manifest, chain: list[Manifest], scheduled: list[Manifest], backoff_s: Sequence[float], now: datetime
) -> RetryLine:
    superseded = _superseded(manifest, chain, scheduled)
    if superseded is not None:
        return superseded
    earlier = [m for m in chain if _order(m) < _order(manifest)]
    free = sum(1 for m in earlier if m.status == RunStatus.WAITING)
    if not backoff_s:  # the job's `retries = []`: as the planner, no attempt after this one
        if manifest.status == RunStatus.WAITING:
            return RetryLine("no further check for the results (the job has no retries)")
        return RetryLine(f"no retry left (attempt {manifest.attempt - free} of 1)")
    outlook = retry_outlook(
        manifest.status, manifest.attempt, manifest.finished_at or manifest.started_at, backoff_s, free_attempts=free
    )
    return _outlook_line(outlook, now)


def _superseded(manifest: Manifest, chain: list[Manifest], scheduled: list[Manifest]) -> RetryLine | None:
    """The line of a run that a later attempt of its chain, or a run for a newer slot or drawing, superseded."""
    later = [m for m in chain if _order(m) > _order(manifest)]
    if later:
        return RetryLine(f"superseded by run {later[0].run_id} (its next attempt)", later[0].run_id)
    newer = [m for m in scheduled if m.job == manifest.job and _order(m) > _order(manifest) and m not in chain]
    if newer:
        return RetryLine(f"superseded by run {newer[0].run_id} (a run for a newer slot or drawing)", newer[0].run_id)
    return None


def _outlook_line(outlook: RetryOutlook, now: datetime) -> RetryLine:
    """The retry policy's answer in words: the next attempt's time (overdue or not), or no retry left."""
    if outlook.state == RetryState.EXHAUSTED:
        return RetryLine(f"no retry left (attempt {outlook.attempts_used} of {outlook.max_attempts})")
    if outlook.due_at is None:
        return RetryLine("")
    late = " (overdue: is the scheduler running?)" if outlook.due_at < now else ""
    when = format_instant(outlook.due_at)
    if outlook.state == RetryState.WAITING:
        text = (
            f"next check for the results at {when}{late} (waiting attempts do not count against the "
            f"{outlook.max_attempts} attempts)"
        )
    else:
        what = "recovery run" if outlook.state == RetryState.RECOVERY else "retry"
        text = f"next {what} at {when}{late} (attempt {outlook.attempts_used + 1} of {outlook.max_attempts})"
    return RetryLine(text, due_at=outlook.due_at)
