"""The one run lifecycle: open -> start step -> end step -> close (or close as crashed).

:class:`RunLifecycle` is the only code that writes a run's manifest, its store rows (``runs``,
``run_steps``, the job lock, the ledger anchor) and its ledger entry. Each transition writes each
record once: opening inserts the run row (with the job lock) and writes the manifest; starting or
ending a step writes the manifest, the step's row and the run's row (heartbeat, and the target once
settled); closing writes the final manifest, appends the ledger entry and closes the run row with the
ledger head in one transaction. :func:`~shiol_lib.jobs.run.run_job` walks a job through it, and
:mod:`shiol_lib.jobs.recovery` closes a dead run through :meth:`RunLifecycle.close_crashed`.
:func:`refuse_if_busy` records a start of a busy job ``refused`` before anything expensive is done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.manifest import SCHEMA_VERSION, Manifest, StepRecord
from shiol_lib.archive.verify import artefact_hashes
from shiol_lib.domain.environments import EnvironmentRecord
from shiol_lib.domain.runs import ErrorClass, RunStatus, StepStatus
from shiol_lib.errors import ArchiveError, ShiolError, SnapshotStaleError, disk_full_message, no_space_left
from shiol_lib.execution.outcome import ReportTitle, StepOutcome
from shiol_lib.jobs.catalog import Step, performance_jobs
from shiol_lib.jobs.context import RunContext, RunOutcome
from shiol_lib.jobs.liveness import busy_error, job_is_alive, running_row
from shiol_lib.jobs.step_records import close_dead_steps, render_dead_step
from shiol_lib.settings import Settings
from shiol_lib.store import Store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import runs as run_table

log = logging.getLogger(__name__)


class RunLifecycle:
    """One run's records, written only through its transitions (see the module's docstring)."""

    def __init__(self, settings: Settings, store: Store, manifest: Manifest, directory: Path | None) -> None:
        self.settings, self.store, self.manifest, self.directory = settings, store, manifest, directory

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.manifest.run_id

    @property
    def job(self) -> str:
        """The run's job."""
        return self.manifest.job

    @classmethod
    def open(
        cls,
        settings: Settings,
        store: Store,
        job: str,
        steps: tuple[Step, ...],
        context: RunContext,
        *,
        seed: int,
        code: dict[str, Any],
        environment: dict[str, Any],
        locks: Sequence[str] = (),
        environment_record: EnvironmentRecord | None = None,
    ) -> RunLifecycle:
        """Record a new ``running`` run (row and job lock in one transaction) and write its manifest.

        ``locks`` are taken with the job's (the store writers' lock). Raises :class:`JobBusyError`
        when a live run holds the job or one of them (this start is recorded ``refused``) and
        :class:`ArchiveError` when the manifest cannot be written (the row is closed ``failed``).
        ``environment_record``: its packages kept once per hash, its hash on the row, its fields in the manifest.
        """
        started = datetime.now(UTC)
        run_id = archive.new_run_id(started)
        directory = archive.run_dir(settings.runs_dir, job, run_id, started)
        # pid, host and heartbeat go to the run row only; the job lock names the run (its uniqueness per job
        # is the exclusion) and is deleted when the run ends, while the row is the history that outlives it.
        try:
            with store.deferred_publishing():  # a snapshot that cannot be published must not hide the start
                holder = job_table.start_run_exclusive(
                    store,
                    running_row(job, context, seed, started, directory),
                    is_alive=lambda h: job_is_alive(h, stale_s=settings.heartbeat_stale_s),
                    locks=locks,
                )
        except SnapshotStaleError as err:  # committed: the run is recorded; its steps meet the full disk, if any
            log.warning("run %s opened; %s", run_id, err)
        if holder is not None:
            raise busy_error(job, holder, run_id)
        if environment_record is not None:
            drifted = run_table.drift(store, job, environment_record)
            run_table.record_environment(store, run_id, environment_record)
            environment = {**environment, **environment_record.manifest_fields(drifted)}
        manifest = Manifest(
            run_id=run_id,
            job=job,
            trigger=str(context.trigger),
            status=RunStatus.RUNNING,
            started_at=started,
            steps=[StepRecord(s.name, s.notebook) for s in steps],
            slot=context.slot,
            draw_date=context.draw_date,
            attempt=context.attempt,
            seed=seed,
            parent_run_id=context.parent_run_id,
            code=code,
            environment=environment,
        )
        run = cls(settings, store, manifest, directory)
        try:
            archive.ensure_writable(directory)
            archive.write_manifest(directory, manifest)
        except ArchiveError as err:
            run._fail_archive(started, err)
            raise
        return run

    @classmethod
    def of_dead_run(cls, settings: Settings, store: Store, row: run_table.RunRow) -> RunLifecycle:
        """The lifecycle of a ``running`` row whose process died: its archived manifest, else one rebuilt."""
        directory = Path(row.archive_dir) if row.archive_dir else None
        if directory is not None and not directory.is_dir():
            directory = None  # nothing archived: only the row is closed
        try:
            if directory is not None:
                return cls(settings, store, archive.read_manifest(directory), directory)
        except ArchiveError as err:  # a run that died before (or while) writing its manifest
            log.warning("run %s: manifest unreadable (%s); rebuilding it from the store", row.run_id, err)
        steps = run_table.read_steps(store, [row.run_id])
        manifest = Manifest(
            run_id=row.run_id,
            job=row.job,
            trigger=row.trigger,
            status=RunStatus.RUNNING,
            started_at=row.started_at,
            slot=row.slot,
            draw_date=row.draw_date,
            attempt=row.attempt,
            steps=[
                StepRecord(str(s["step"]), str(s["notebook"]), StepStatus(str(s["status"])))
                for _, s in steps.iterrows()
            ],
            seed=row.seed,
            parent_run_id=row.parent_run_id,
            target_draw_date=row.target_draw_date,
        )
        return cls(settings, store, manifest, directory)

    def title(self) -> ReportTitle:
        """What a step report's title names: this run, its job and its target drawing."""
        target = self.manifest.target_draw_date
        return ReportTitle(self.run_id, self.job, target.isoformat() if target else "")

    def start_step(self, position: int, *, started_at: datetime) -> None:
        """Step ``position`` (from 1) starts: manifest, step row and run row (heartbeat, target), once each."""
        self._write_step(
            position, replace(self.manifest.steps[position - 1], status=StepStatus.RUNNING, started_at=started_at)
        )

    def end_step(self, position: int, record: StepRecord) -> None:
        """Step ``position`` ended (or was skipped) as ``record`` says: manifest, step row, run row, once each."""
        self._write_step(position, record)

    def end_open_steps(self, status: StepStatus) -> None:
        """After a run was cut short: the running step gets ``status``, the ones not started ``skipped``."""
        for position, entry in enumerate(list(self.manifest.steps), start=1):
            if entry.status in (StepStatus.RUNNING, StepStatus.PENDING):
                ended = status if entry.status == StepStatus.RUNNING else StepStatus.SKIPPED
                self.end_step(position, replace(entry, status=ended))

    def close(
        self, status: RunStatus, *, error: str | None, error_class: ErrorClass | None, results: list[StepOutcome]
    ) -> RunOutcome:
        """Close the run: final manifest, ledger entry, run row with the ledger head, job lock, index; once each."""
        from shiol_lib.store import predictions as prediction_table

        finished = datetime.now(UTC)
        manifest = self.manifest
        manifest.status, manifest.error, manifest.finished_at = status, error, finished
        manifest.error_class = str(error_class) if error_class is not None else None
        manifest.outputs = prediction_table.output_hashes(self.store, self.run_id)
        manifest.metrics = prediction_table.run_metrics(self.store, self.run_id)
        assert self.directory is not None  # an opened run always has its folder
        manifest.artefacts = artefact_hashes(self.directory)
        try:
            manifest_path = archive.write_manifest(self.directory, manifest)
            entry = ledger.append_entry(
                self.settings.runs_dir,
                run_id=self.run_id,
                job=self.job,
                status=status,
                manifest_path=manifest_path,
                key=self.settings.ledger_key,
            )
        except ArchiveError as err:
            self._fail_archive(finished, err)
            raise
        try:
            with self.store.deferred_publishing():  # the run's end, its lock and its dead letters: one publish
                run_table.finish_run(
                    self.store,
                    self.run_id,
                    status=status,
                    finished_at=finished,
                    error=error,
                    error_class=manifest.error_class,
                    ledger_head=(entry["seq"], entry["hash"]),
                )
                job_table.release_job(self.store, self.run_id)
                if status == RunStatus.SUCCESS:  # before the listing, which shows the open dead letters
                    job_table.resolve_dead_letters(
                        self.store,
                        job=self.job,
                        slot=manifest.slot,
                        draw_date=manifest.draw_date,
                        run_id=self.run_id,
                        at=finished,
                    )
        except SnapshotStaleError as err:  # committed: the run is closed, only the readers' copy is late
            log.warning("run %s closed; %s", self.run_id, err)
        self._write_index()
        return RunOutcome(self.run_id, self.job, status, self.directory, manifest, results)

    def close_crashed(self, row: run_table.RunRow, *, reason: str) -> bool:
        """Close a dead run: partials rendered, final manifest and ledger entry, then the row; once each.

        It closes ``crashed``, or ``failed`` with the cause its row recorded (a full disk). A run whose
        folder never existed gets one with a minimal manifest; a run whose close reached the ledger
        but not the store keeps that close. Its stored tickets are discarded (never counted twice;
        their hash stays in the outputs). When the archive cannot be written the row stays ``running``
        (a later recovery closes it): a closed row always has its ledger entry. Returns whether it closed.
        """
        from shiol_lib.store import predictions as prediction_table  # a scheduler with no dead run needs no pandas

        ended, manifest = row.heartbeat_at or row.started_at, self.manifest
        error: str | None
        error_class: str | None
        if row.error_class == ErrorClass.DISK_FULL:  # recorded when its archive could not be written
            status, error, error_class = RunStatus.FAILED, row.error or reason, ErrorClass.DISK_FULL
        else:
            status, error, error_class = RunStatus.CRASHED, f"crashed: {reason}", ErrorClass.CRASHED
        try:
            with self.store.deferred_publishing(publish_at_end=False):  # the row's close publishes once
                entered = any(e.get("run_id") == row.run_id for e in ledger.read_ledger(self.settings.runs_dir))
                if entered and manifest.status != RunStatus.RUNNING:  # its close reached the ledger, not the store
                    status, error, ended = RunStatus(manifest.status), manifest.error, manifest.finished_at or ended
                    error_class = manifest.error_class
                    newest = ledger.head(self.settings.runs_dir)
                    head = (newest.seq, newest.hash) if newest else None
                else:
                    fresh = self.directory is None  # the folder never existed: a minimal manifest, nothing to render
                    self.directory = self.directory or Path(
                        row.archive_dir or archive.run_dir(self.settings.runs_dir, row.job, row.run_id, row.started_at)
                    )
                    if fresh:
                        archive.ensure_writable(self.directory)
                    self._close_dead_steps(row, reason, render=not fresh)
                    manifest.outputs = prediction_table.output_hashes(self.store, row.run_id)
                    discarded = prediction_table.discard_predictions(self.store, row.run_id)
                    manifest.status, manifest.error = (
                        status,
                        (error or reason)
                        + (
                            f"; its {discarded} stored tickets were discarded (their hash stays in outputs)"
                            if discarded
                            else ""
                        ),
                    )
                    manifest.finished_at, manifest.error_class = ended, str(error_class)
                    error = manifest.error
                    manifest.schema = SCHEMA_VERSION
                    manifest.artefacts = artefact_hashes(self.directory)
                    path = archive.write_manifest(self.directory, manifest)
                    entry = ledger.append_entry(
                        self.settings.runs_dir,
                        run_id=row.run_id,
                        job=row.job,
                        status=status,
                        manifest_path=path,
                        key=self.settings.ledger_key,
                    )
                    head = (entry["seq"], entry["hash"])
        except (ShiolError, OSError) as err:  # the archive, or a step row, could not be written
            log.error(
                "run %s: its archive could not be closed (%s); it stays open until a later recovery can write it",
                row.run_id,
                err,
            )
            return False
        try:
            if status == RunStatus.CRASHED:
                job_table.mark_crashed(self.store, row.run_id, at=ended, reason=reason, ledger_head=head)
            else:
                run_table.finish_run(
                    self.store,
                    row.run_id,
                    status=status,
                    finished_at=ended,
                    error=error,
                    error_class=str(error_class) if error_class else None,
                    ledger_head=head,
                )
                job_table.release_job(self.store, row.run_id)
        except SnapshotStaleError as err:  # committed: the run is closed, only the readers' copy is late
            log.warning("run %s closed; %s", row.run_id, err)
        log.warning("run %s of %s closed as %s: %s", row.run_id, row.job, status, error)
        self._write_index()
        return True

    def _close_dead_steps(self, row: run_table.RunRow, reason: str, *, render: bool = True) -> None:
        """The running step becomes ``crashed`` with its partial notebook rendered; later ones ``skipped``."""
        title = ReportTitle(row.run_id, row.job, row.target_draw_date.isoformat() if row.target_draw_date else "")

        def draw(step: StepRecord) -> None:
            assert self.directory is not None  # a run's steps are rendered only in its folder
            render_dead_step(step, reason, title, directory=self.directory, notebooks_dir=self.settings.notebooks_dir)

        for position in close_dead_steps(self.manifest.steps, reason, render=draw if render else None):
            step = self.manifest.steps[position - 1]
            run_table.upsert_step(
                self.store,
                row.run_id,
                position,
                step.name,
                step.notebook,
                status=step.status,
                started_at=step.started_at,
                error=step.error,
            )

    def _write_step(self, position: int, record: StepRecord) -> None:
        self.manifest.steps[position - 1] = record
        assert self.directory is not None
        archive.write_manifest(self.directory, self.manifest)
        fields: dict[str, object] = {"heartbeat_at": datetime.now(UTC)}
        if self.manifest.target_draw_date is not None:  # settled by the job before its first step that needs it
            fields.update(target_draw_date=self.manifest.target_draw_date, draw_date=self.manifest.draw_date)
        publish = record.status != StepStatus.RUNNING  # once a step, at its end; a start marks nothing stale
        with self.store.held(), self.store.deferred_publishing(publish_at_end=publish):  # one connection
            run_table.upsert_step(
                self.store,
                self.run_id,
                position,
                record.name,
                record.notebook,
                status=record.status,
                started_at=record.started_at,
                finished_at=record.finished_at,
                error=record.error,
                failed_cell=record.failed_cell,
                publish=publish,
            )
            run_table.update_run(self.store, self.run_id, publish=publish, **fields)

    def _fail_archive(self, at: datetime, err: ArchiveError) -> None:
        if no_space_left(err):  # the row keeps the cause and stays open: recovery closes it with its ledger entry
            message = disk_full_message(err, fallback=self.settings.runs_dir)
            try:
                run_table.update_run(self.store, self.run_id, error=message, error_class=str(ErrorClass.DISK_FULL))
            except SnapshotStaleError:  # committed: only the readers' copy is late
                pass
            except ShiolError as stored:
                log.error("run %s: its cause could not be recorded either: %s", self.run_id, stored)
            raise ArchiveError(message) from err
        run_table.finish_run(
            self.store,
            self.run_id,
            status=RunStatus.FAILED,
            finished_at=at,
            error=f"archive: {err}",
            error_class=ErrorClass.ARCHIVE,
        )
        job_table.release_job(self.store, self.run_id)

    def _write_index(self) -> None:
        from shiol_lib.jobs.definitions.live import job_pages
        from shiol_lib.reports import dashboard as run_index  # a scheduler with no dead run needs no jinja2

        try:
            run_index.write_index(
                self.settings.runs_dir,
                jobs=job_pages(self.settings),
                retry_backoff_s=self.settings.retry_backoff_s,
                performance_jobs=performance_jobs(),
                ledger_key=self.settings.ledger_key,
                incremental=True,
                **run_index.store_context(self.store),
            )
        except ArchiveError as err:  # the run is closed and recorded; only its listing is late
            log.warning("run %s closed, but runs/index.html was not rewritten: %s", self.run_id, err)
