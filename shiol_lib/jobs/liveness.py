"""Whether a run's process is alive: heartbeats, the liveness check behind job locks, and SIGTERM.

A running run writes a heartbeat (:class:`Heartbeat`); a job lock whose holder is on this host with a
dead pid, or whose heartbeat is stale, is free (:func:`job_is_alive`). :func:`interrupt_on_sigterm`
turns SIGTERM into :class:`~shiol_lib.execution.processes.Interrupted` so a job process closes its run cleanly.
:func:`find_dead_runs` names the ``running`` runs whose process is gone, for ``status`` and the plan
(which report them; recovery closes them). :func:`refuse_if_busy` refuses a start of a job a live run
holds, before any kernel starts.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from shiol_lib.archive import folders as archive
from shiol_lib.domain.draw_calendar import iso_et, iso_utc
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import JobBusyError, ShiolError
from shiol_lib.execution.processes import Interrupted
from shiol_lib.jobs.context import RunContext
from shiol_lib.settings import Settings
from shiol_lib.store import Store, open_store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import runs as run_table

log = logging.getLogger(__name__)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM stop the current run cleanly: kernel killed, run recorded ``interrupted``."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)


class Heartbeat:
    """Writes a run's heartbeat every ``every_s`` from a daemon thread while the ``with`` block lasts."""

    def __init__(self, store: Store, job: str, run_id: str, *, every_s: float) -> None:
        self._store, self._job, self._run_id, self._every_s = store, job, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._store.lock_timeout_s + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                job_table.heartbeat(self._store, self._job, self._run_id, datetime.now(UTC))
            except ShiolError as err:  # a busy store: the next beat tries again
                log.warning("heartbeat of run %s not written: %s", self._run_id, err)


def job_is_alive(holder: job_table.LockHolder, *, stale_s: float, now: datetime | None = None) -> bool:
    """Whether the process holding a job still runs.

    On this host the process table decides: a live pid wins over a stale heartbeat (a busy store can
    delay heartbeats; two runs of one job must never overlap), a dead one loses however fresh its
    heartbeat. On another host only the heartbeat can tell.
    """
    now = now or datetime.now(UTC)
    if holder.host != socket.gethostname():
        return (now - holder.heartbeat_at).total_seconds() <= stale_s
    try:
        process = psutil.Process(holder.pid)
        if process.create_time() > holder.heartbeat_at.timestamp() + 1.0:
            return False  # the pid was reused by a process started after the holder's last heartbeat
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass(frozen=True)
class DeadRun:
    """A run still recorded ``running`` whose process is gone: not closed yet (recovery closes it)."""

    job: str
    run_id: str
    pid: int | None
    host: str | None
    heartbeat_at: datetime
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the last heartbeat in New York time with its UTC twin."""
        return {
            "job": self.job,
            "run_id": self.run_id,
            "pid": self.pid,
            "host": self.host,
            "heartbeat_at": iso_et(self.heartbeat_at),
            "heartbeat_at_utc": iso_utc(self.heartbeat_at),
            "reason": self.reason,
        }

    def as_text(self) -> str:
        """One line for people."""
        return (
            f"{self.job} run {self.run_id} (pid {self.pid} on {self.host}): {self.reason}; "
            f"last heartbeat {iso_utc(self.heartbeat_at)} UTC"
        )


def find_dead_runs(store: Store, *, stale_s: float, now: datetime | None = None) -> list[DeadRun]:
    """The ``running`` runs whose process is gone, by :func:`job_is_alive`; reads only, closes nothing.

    On this host a dead pid names the run at once, however fresh its heartbeat; on another host only a
    heartbeat older than ``stale_s`` does.
    """
    now = now or datetime.now(UTC)
    here = socket.gethostname()
    dead = []
    for row in job_table.running_runs(store):
        beat = row.heartbeat_at or row.started_at
        holder = job_table.LockHolder(row.job, row.run_id, row.pid or 0, row.host or "", beat)
        if job_is_alive(holder, stale_s=stale_s, now=now):
            continue
        reason = (
            "its process is gone on this host"
            if row.host == here
            else f"no heartbeat for more than {stale_s:g} s from host {row.host}"
        )
        dead.append(DeadRun(row.job, row.run_id, row.pid, row.host, beat, reason))
    return sorted(dead, key=lambda d: (d.job, d.run_id))


def refuse_if_busy(settings: Settings, job: str, context: RunContext, *, seed: int, locks: Sequence[str] = ()) -> None:
    """Record this start ``refused`` and raise :class:`JobBusyError` when a live run holds ``job`` (or ``locks``).

    A free job (or no store yet) costs one read and nothing is written: :meth:`RunLifecycle.open`
    decides again, under the lock. Asked before any kernel starts or the runner is imported, so a
    refused start answers at once.
    """
    if not settings.db_path.exists():  # no store: no run holds anything (and none is created here)
        return
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
    started = datetime.now(UTC)
    row = running_row(
        job, context, seed, started, archive.run_dir(settings.runs_dir, job, archive.new_run_id(started), started)
    )
    holder = job_table.refuse_if_held(
        store, row, is_alive=lambda h: job_is_alive(h, stale_s=settings.heartbeat_stale_s), locks=locks
    )
    if holder is not None:
        raise busy_error(job, holder, row.run_id)


def running_row(job: str, context: RunContext, seed: int, started: datetime, directory: Path) -> run_table.RunRow:
    """A new run's row as this process opens it (its run id is the folder's name)."""
    return run_table.RunRow(
        run_id=directory.name,
        job=job,
        slot=context.slot,
        trigger=str(context.trigger),
        status=RunStatus.RUNNING,
        started_at=started,
        finished_at=None,
        error=None,
        error_class=None,
        target_draw_date=None,
        attempt=context.attempt,
        parent_run_id=context.parent_run_id,
        seed=seed,
        pid=os.getpid(),
        host=socket.gethostname(),
        heartbeat_at=started,
        archive_dir=str(directory),
        draw_date=context.draw_date,
    )


def busy_error(job: str, holder: job_table.LockHolder, run_id: str) -> JobBusyError:
    """The refusal of a start of ``job`` (recorded as refused run ``run_id``) while ``holder`` runs it."""
    if holder.job != job:  # another writer of the store
        return JobBusyError(f"{job_table.busy_reason(job, holder)}; this start was recorded as refused run {run_id}")
    return JobBusyError(
        f"job {job} is already running (run {holder.run_id}, pid {holder.pid} on {holder.host}); "
        f"this start was recorded as refused run {run_id}"
    )
