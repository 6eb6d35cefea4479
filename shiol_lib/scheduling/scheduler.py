"""The scheduler's engine: what Rocketry's conditions ask and what its tasks do.

The store, not memory, is the source of truth. A planning thread (:class:`PlanLoop`, started by
:meth:`Scheduler.start_planning`) plans from the store off the event loop, records what each plan
says is missed and raises its alerts; :meth:`Scheduler.is_due` only reads the last plan from memory.
:meth:`Scheduler.execute_due` plans again from the store, runs the due job in a fresh child
process in its own session (:mod:`shiol_lib.jobs.job_process`, handed this scheduler's settings),
and afterwards sends the new signed ledger head (the witness) as an informational alert when a run
closed, writes a dead letter when the last attempt failed and publishes the new plan. Plan
alerts are incidents (:mod:`shiol_lib.scheduling.incidents`): one alert when each opens, one when it clears.
:meth:`Scheduler.start` marks runs whose process is gone as ``crashed`` so the planner makes their slot due again.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger, witness
from shiol_lib.domain.draw_calendar import NEW_YORK, draw_coverage
from shiol_lib.domain.runs import ErrorClass, ExitCode, RunStatus, StepStatus
from shiol_lib.errors import ShiolError
from shiol_lib.execution.processes import kill_process_tree
from shiol_lib.jobs.context import RunContext, parse_trigger
from shiol_lib.jobs.definitions.live import JobDefinitions
from shiol_lib.jobs.job_process import RunRequest, RunResult, start_job_process
from shiol_lib.jobs.liveness import find_dead_runs, job_is_alive
from shiol_lib.jobs.recovery import close_dead_runs
from shiol_lib.logs import first_line
from shiol_lib.scheduling.alerts import WITNESS_ALERT, send_alert
from shiol_lib.scheduling.incidents import definitions_incident, reconcile_incidents
from shiol_lib.scheduling.plan_loop import MAX_WAIT_S, PlanLoop, file_signature
from shiol_lib.scheduling.planner import Due, History, Plan, PlannerConfig, SlotRecord, job_policy, plan_runs
from shiol_lib.scheduling.plans import job_schedules, schedules_from
from shiol_lib.settings import Settings
from shiol_lib.store import Store, open_store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import runs as run_table
from shiol_lib.store.jobs import LockHolder

if TYPE_CHECKING:
    from shiol_lib.jobs.definitions import JobSpec

log = logging.getLogger(__name__)

HISTORY_DAYS = 21
# The step statuses a dead letter names as the failing notebook (the first such step of the run).
_DEAD_LETTER_STEPS = [
    s.value for s in (StepStatus.FAILED, StepStatus.TIMEOUT, StepStatus.INTERRUPTED, StepStatus.RUNNING)
]
STOP_GRACE_S = 60.0


def planner_config(settings: Settings, definitions: Mapping[str, JobSpec] | None = None) -> PlannerConfig:
    """The planner's configuration: the job ``definitions`` in force (default: the built-in jobs) and settings.

    A bad cron expression raises :class:`ScheduleError` naming where it came from.
    """
    if definitions is None:
        jobs, writers = job_schedules(settings), frozenset[str]()
    else:
        jobs, writers = schedules_from(definitions)
    return PlannerConfig(
        jobs=jobs,
        store_writers=writers,
        grace_s=settings.grace_s,
        draw_delay_s=settings.draw_delay_s,
        retry_backoff_s=settings.retry_backoff_s,
        waiting_deadline_s=settings.waiting_deadline_s,
        heartbeat_stale_s=settings.heartbeat_stale_s,
        failure_alert_after=settings.alert_after_failures,
    )


def read_history(store: Store, now: datetime, *, stale_s: float | None = None) -> History:
    """The execution history the planner needs: recent runs, missed entries and open dead letters.

    With ``stale_s``, a ``running`` row whose process is alive on this host reads as freshly beating,
    so the planner never takes a live run with a delayed heartbeat for a crashed one.
    """
    since = now - timedelta(days=HISTORY_DAYS)
    runs, missed, letters, first_start = job_table.planner_history(store, since)
    if stale_s is not None:
        runs = [
            replace(r, heartbeat_at=now) if r.status == RunStatus.RUNNING and _alive(r, stale_s, now) else r
            for r in runs
        ]
    return History(
        runs=tuple(runs),
        missed=tuple(SlotRecord(job, slot, draw) for job, slot, draw, _ in missed),
        dead_letters=tuple(SlotRecord(d.job, d.slot, d.draw_date) for d in letters),
        scheduler_started=first_start,
        since=since,
    )


def _alive(row: run_table.RunRow, stale_s: float, now: datetime) -> bool:
    holder = LockHolder(row.job, row.run_id, row.pid or 0, row.host or "", row.heartbeat_at or row.started_at)
    return job_is_alive(holder, stale_s=stale_s, now=now)


class Scheduler:
    """Plans and executes the workbench's jobs for the Rocketry app (one per process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.definitions = JobDefinitions(settings)
        self.config = planner_config(settings, self.definitions.in_force)
        db = settings.db_path  # a write by any process changes the file or its write-ahead log
        watched = [db, db.with_name(db.name + ".wal"), settings.jobs_path]  # and an edit of the jobs file
        self._planner = PlanLoop(
            self.plan,
            cycle_s=settings.scheduler_cycle_s,
            on_plan=self._on_plan,
            max_wait_s=min(MAX_WAIT_S, settings.plan_max_age_s / 2),  # /healthz stays fresh
            changes=lambda: file_signature(watched),
        )
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._store: Store | None = None

    def store(self) -> Store:
        """The store (opened and migrated once; every use is a short-lived connection)."""
        if self._store is None:
            s = self.settings
            self._store = open_store(s.db_path, s.snapshot_path, lock_timeout_s=s.lock_timeout_s)
        return self._store

    # -- start-up -----------------------------------------------------------------------------

    def start(self, now: datetime | None = None) -> list[str]:
        """Refuse to start without a usable store and archive; record the start; mark dead runs crashed.

        Returns the ids of the runs marked crashed. The first recorded start is when the scheduled jobs
        entered service (see :class:`~shiol_lib.scheduling.plans.History`).
        """
        archive.ensure_writable(self.settings.runs_dir)
        store = self.store()
        job_table.record_scheduler_start(store, at=now or datetime.now(UTC), pid=os.getpid(), host=socket.gethostname())
        return self.recover(store)

    def recover(self, store: Store, now: datetime | None = None) -> list[str]:
        """Mark ``running`` rows whose process is gone (or whose heartbeat is stale) as ``crashed``."""
        crashed = []
        for row in close_dead_runs(self.settings, store, now=now):  # archive, ledger and store closed
            crashed.append(row.run_id)
            if row.attempt >= job_policy(self.config, row.job).max_attempts:
                self._dead_letter(store, run_table.get_run(store, row.run_id))
        self._planner.wake()
        return crashed

    # -- planning -----------------------------------------------------------------------------

    def plan(self, at: datetime | None = None, store: Store | None = None) -> Plan:
        """The plan at ``at`` (default now), from the store, with the store's drawings against the calendar.

        Reads only: a run whose process is gone is named in ``dead_runs``, not closed.
        """
        at = at or datetime.now(UTC)
        store = store or self.store()
        if self.definitions.reload():  # a changed jobs file that validates: its definitions from now on
            self.config = planner_config(self.settings, self.definitions.in_force)
        with store.held():  # one connection for the cycle's three reads
            history = read_history(store, at, stale_s=self.settings.heartbeat_stale_s)
            draws = store.draw_dates()
            dead = find_dead_runs(store, stale_s=self.settings.heartbeat_stale_s, now=at)
        plan = plan_runs(history, at, self.config)
        incident = definitions_incident(self.definitions.problems)
        return replace(
            plan,
            draws=draw_coverage(draws, at),
            dead_runs=dead,
            definitions=[JobDefinitions.problem_dict(p) for p in self.definitions.problems],
            incidents=[*plan.incidents, *([incident] if incident else [])],
            alerts=[*plan.alerts, *([incident.message] if incident else [])],
        )

    def start_planning(self) -> None:
        """Start the planning thread: plans from now on come from it (see :class:`PlanLoop`)."""
        self._planner.start()

    def replan(self) -> Plan | None:
        """Plan now in the caller's thread, record its consequences and keep it; None when it failed."""
        return self._planner.run_once()

    def cached_plan(self) -> Plan | None:
        """The last plan made (memory only), or None before the first."""
        latest = self._planner.latest()
        return None if latest is None else latest.plan

    def plan_age_s(self) -> float | None:
        """Seconds since the last plan was made, or None before the first."""
        return self._planner.age_s()

    def is_due(self, job: str) -> bool:
        """Whether the last plan owes ``job`` a run. Memory only: never waits for the store, never raises."""
        plan = self.cached_plan()
        return plan is not None and any(d.job == job for d in plan.due)

    # -- execution ----------------------------------------------------------------------------

    def execute_due(self, job: str) -> RunStatus | None:
        """Run what the plan owes for ``job`` (once) and record its consequences; returns the status."""
        if self._stopping.is_set() or job in self._children:
            return None
        store = self.store()
        plan = self.plan(store=store)
        self._record_plan(store, plan)
        due = next((d for d in plan.due if d.job == job), None)
        if due is None:
            return None
        before = _ledger_head(self.settings)
        status = self._run_child(due)
        self.recover(store)  # a job process that died left its run `running`: now it is `crashed`
        self._send_witness(store, due.job, before)
        after = self.plan(store=store)
        self._planner.publish(after)  # no stale "due" for the job that just ran
        self._record_plan(store, after)
        if status in (RunStatus.FAILED, RunStatus.TIMEOUT) and due.attempt >= job_policy(self.config, job).max_attempts:
            latest = run_table.list_runs(store, job=job, limit=1)
            if latest:
                self._dead_letter(store, latest[0])
        return status

    def _run_child(self, due: Due) -> RunStatus:
        """Run the due job in a fresh job process given this scheduler's settings; returns its status."""
        request = RunRequest(
            job=due.job,
            context=RunContext(
                trigger=parse_trigger(due.reason), slot=due.slot, draw_date=due.draw_date, attempt=due.attempt
            ),
            jobs_text=self.definitions.text,  # the definitions in force, even after a broken edit of the file
        )
        event = {"job": due.job, "slot": due.slot.isoformat(), "attempt": due.attempt, "trigger": due.reason}
        log.info(
            "job %s slot %s attempt %d: starting (%s)", due.job, event["slot"], due.attempt, due.reason, extra=event
        )
        with tempfile.TemporaryDirectory(prefix="shiol-job-") as folder:
            result_path = Path(folder) / "result.json"
            proc, document = start_job_process(self.settings, request, result_path)
            with self._lock:
                self._children[due.job] = proc
            try:
                _, err = proc.communicate(document)
            finally:
                with self._lock:
                    self._children.pop(due.job, None)
            result = RunResult.read(result_path)
        if result is None:  # the job process died before it could say
            status = RunStatus.REFUSED if proc.returncode == ExitCode.BUSY else RunStatus.FAILED
            result = RunResult(
                None,
                status,
                f"the job process ended with code {proc.returncode}: {(err or '').strip()[-500:] or 'no message'}",
                error_class=ErrorClass.JOB_PROCESS,
            )
        _log_finished(event, result)
        return RunStatus(result.status)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Start nothing more; give running jobs ``grace_s`` to finish, then stop them.

        Jobs still running then get SIGTERM (they record their run ``interrupted`` and kill their
        kernel); whatever is left 30 s later is killed.
        """
        self._stopping.set()
        self._planner.stop()
        with self._lock:
            children = list(self._children.values())
        deadline = time.monotonic() + grace_s
        for proc in children:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("job process %d still running after %.0f s: interrupting it", proc.pid, grace_s)
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    kill_process_tree(proc.pid)

    # -- consequences -------------------------------------------------------------------------

    def _on_plan(self, plan: Plan) -> None:
        self._record_plan(self.store(), plan)

    def _record_plan(self, store: Store, plan: Plan) -> None:
        """Alert the plan's incidents (first: a missed drawing shows in one plan only), then record its missed."""
        now = datetime.now(UTC)
        reconcile_incidents(self.settings, store, plan, now=now)
        for missed in plan.missed:
            job_table.record_missed(
                store, job=missed.job, slot=missed.slot, draw_date=missed.draw_date, kind=missed.kind, at=now
            )

    def _dead_letter(self, store: Store, row: run_table.RunRow | None) -> None:
        if row is None:
            return
        steps = run_table.read_steps(store, [row.run_id])
        failed = steps[steps["status"].isin(_DEAD_LETTER_STEPS)]
        notebook = str(failed.iloc[0]["notebook"]) if len(failed) else None
        cell = failed.iloc[0]["failed_cell"] if len(failed) else None
        command = f"shiol run {row.job} --trigger manual"
        if row.slot is not None:
            command += f" --slot {row.slot.astimezone(NEW_YORK).isoformat()}"
        if row.draw_date is not None:
            command += f" --draw-date {row.draw_date.isoformat()}"
        letter = job_table.DeadLetter(
            dead_letter_id=job_table.new_dead_letter_id(),
            job=row.job,
            slot=row.slot,
            draw_date=row.draw_date,
            attempts=row.attempt,
            last_run_id=row.run_id,
            error_class=row.error_class or row.status,
            error=row.error,
            notebook=notebook,
            failed_cell=None if cell is None or cell != cell else int(cell),
            rerun_command=command,
            created_at=datetime.now(UTC),
            resolved_at=None,
            resolved_by_run_id=None,
        )
        job_table.add_dead_letter(store, letter)
        self._alert(
            store,
            "dead-letter",
            row.job,
            f"{row.job} failed {row.attempt} attempts ({letter.error_class}); re-run with: {command}",
        )

    def _send_witness(self, store: Store, job: str, before: ledger.Head | None) -> None:
        """After a job process: the signed ledger head to the alert channels, once, if a run closed meanwhile.

        The witness is signed with the key, never carries it; an operator keeps the message elsewhere and
        verifies with ``shiol runs verify --witness FILE`` (the message text is a witness line).
        """
        head = _ledger_head(self.settings)
        if head is None or head == before:  # refused, or nothing closed: nothing new to witness
            return
        seen = witness.make(head.seq, head.hash, self.settings.ledger_key)
        send_alert(
            self.settings,
            store,
            kind=WITNESS_ALERT,
            job=job,
            message=f"ledger witness {seen.to_json()}",
            dedup_window_s=0,
        )

    def _alert(self, store: Store, kind: str, job: str | None, message: str) -> None:
        """Log, post and mail an alert (never raises; a repeat within the dedup window is skipped)."""
        send_alert(
            self.settings, store, kind=kind, job=job, message=message, dedup_window_s=self.settings.alert_dedup_s
        )


def _ledger_head(settings: Settings) -> ledger.Head | None:
    """The ledger's head, or None when it is empty or unreadable (``runs verify`` reports that; logged here)."""
    try:
        return ledger.head(settings.runs_dir)
    except ShiolError as err:
        log.error("the ledger head could not be read for its witness: %s", err)
        return None


def _log_finished(event: dict[str, object], result: RunResult) -> None:
    """One line for a finished run: job, run id, slot, attempt, status; a failure's error class and first line."""
    fields = {**event, "run_id": result.run_id, "status": result.status}
    text = f"job {event['job']} run {result.run_id or '-'} slot {event['slot']} attempt {event['attempt']}: "
    if result.status in (RunStatus.SUCCESS, RunStatus.WAITING, RunStatus.REFUSED):
        log.info(text + f"finished {result.status}", extra=fields)
        return
    fields.update(error_class=result.error_class or result.status, error=first_line(result.error))
    log.error(
        text + f"finished {result.status} [{fields['error_class']}] {fields['error'] or ''}".rstrip(), extra=fields
    )
