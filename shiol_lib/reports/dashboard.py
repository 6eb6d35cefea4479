"""``runs/index.html``, the run dashboard, its month chunks, and one readable page per run beside its manifest.

Static pages that open from disk with no server: relative links only, inline CSS and an inline filter
script, nothing fetched from the network. :func:`write_index` walks the stages in order: read the
manifests (at a run close, only the newest :data:`~shiol_lib.reports.run_chunks.WINDOW_DAYS` days'; the
older runs are rows of the month chunks :mod:`shiol_lib.reports.run_chunks` keeps) -> build the views
(timeline by job and day, latest performance against the baseline, failed runs with their error line,
open dead letters, missed drawings) -> render with jinja2 (autoescaped: anything from data, parameters
or errors renders as text) -> write the changed run pages and chunks and the dashboard atomically ->
record their hashes (:mod:`shiol_lib.archive.pages`, checked by ``shiol runs verify``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from shiol_lib.archive import ledger
from shiol_lib.archive.folders import MANIFEST, iter_manifests, write_atomic
from shiol_lib.archive.manifest import Manifest
from shiol_lib.archive.pages import CHUNK_DIR, chunk_rel, read_pages, record_pages
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import ArchiveError
from shiol_lib.reports import run_chunks as chunks
from shiol_lib.reports.job_pages import JobPage, write_job_pages
from shiol_lib.reports.report import template_environment
from shiol_lib.reports.retry_lines import RetryLine, retry_lines
from shiol_lib.reports.run_views import (
    RUN_PAGE,
    TIMELINE_DAYS,
    RunView,
    folder_day,
    headline,
    listed_failed,
    row_of,
    timeline,
    view_of,
)
from shiol_lib.settings import default as setting_default
from shiol_lib.store import Store
from shiol_lib.store.jobs import DeadLetter
from shiol_lib.store.monitoring import MissedSlot, missed_slots, open_dead_letters

log = logging.getLogger(__name__)

INDEX = "index.html"
__all__ = ["INDEX", "RUN_PAGE", "RunView", "store_context", "write_index"]


def store_context(store: Store) -> dict[str, Any]:
    """The open dead letters and recorded missed drawings, for :func:`write_index` (empty on any fault)."""
    try:
        return {"dead_letters": open_dead_letters(store), "missed": missed_slots(store, limit=100)}
    except Exception:  # noqa: BLE001 - the dashboard never fails a run
        log.warning("could not read dead letters and missed slots for the dashboard", exc_info=True)
        return {}


def write_index(
    runs_dir: Path,
    *,
    dead_letters: Sequence[DeadLetter] | None = None,
    missed: Sequence[MissedSlot] | None = None,
    retry_backoff_s: Sequence[float] | None = None,
    now: datetime | None = None,
    performance_jobs: Collection[str] | None = None,
    ledger_key: str | None = None,
    incremental: bool = False,
    jobs: Sequence[JobPage] = (),
) -> Path:
    """Regenerate ``runs/index.html``, the month chunks and the run pages from the manifests in the archive.

    Args:
        runs_dir: The archive folder.
        dead_letters: Open dead letters (shown with their re-run command).
        missed: Missed slots and drawings recorded by the scheduler.
        retry_backoff_s: The retry delays (``SHIOL_RETRY_BACKOFF_S``; default: the setting's default),
            from which each unsuccessful run's next retry is computed.
        now: The instant the page is generated at (a retry due before it is shown overdue).
        performance_jobs: The jobs whose latest successful run shows as the latest performance (the
            catalog's ``reports_performance`` jobs); None: any job whose run recorded the performance step.
        ledger_key: ``SHIOL_LEDGER_KEY``: signs the record of the pages' hashes (``runs/pages.json``).
        jobs: The job definitions for the job pages (``runs/<job>/index.html``, one per job the archive
            names; a job without a definition here gets a page of its runs only).
        incremental: A run close: read only the manifests of the dashboard's window
            (:data:`~shiol_lib.reports.run_chunks.WINDOW_DAYS`) and rewrite only what changed; it falls
            back to the whole rewrite when the record or a chunk outside the window is missing.

    Returns:
        The dashboard's path.
    """
    runs_dir = Path(runs_dir)
    with ledger.locked(runs_dir):  # the pages and their record show one ledger head
        head = ledger.head(runs_dir)
        pages = _Pages(runs_dir, retry_backoff_s, now or datetime.now(UTC), performance_jobs, incremental)
        try:
            written = pages.write(dead_letters, missed, jobs)
        except BaseException:
            _record_partial(runs_dir, pages.written, ledger_key)
            raise
        record_pages(runs_dir, written, head, key=ledger_key, kept=pages.kept)
    return runs_dir / INDEX


def _record_partial(runs_dir: Path, written: list[Path], key: str | None) -> None:
    """After a write of the pages failed midway: record the pages it did replace, beside the others' old hashes.

    Each page is replaced atomically, so the archive holds a mix of new and old pages. Recording the new
    pages' hashes under the old record's head keeps ``shiol runs verify`` from calling them changed
    after they were written: it reports only the pages' head behind the ledger (their last rewrite
    failed), and the next write of the pages mends it.
    """
    if not written:
        return
    try:
        old = read_pages(runs_dir)
        record_pages(runs_dir, written, old.head if old else None, key=key, kept=dict(old.pages) if old else None)
    except ArchiveError as err:  # e.g. the full disk the pages met: verify will name the pages
        log.warning("could not record the pages written before the failure: %s", err)


class _Pages:
    """One write of the pages: the window's manifests read, the changed pages and chunks written."""

    def __init__(
        self,
        runs_dir: Path,
        retry_backoff_s: Sequence[float] | None,
        now: datetime,
        performance_jobs: Collection[str] | None,
        incremental: bool,
    ) -> None:
        self.runs_dir, self.now, self.performance_jobs = runs_dir, now, performance_jobs
        self.backoff = tuple(retry_backoff_s) if retry_backoff_s is not None else setting_default("retry_backoff_s")
        days, _ = chunks.list_run_folders(runs_dir, since="9999")
        self.months = sorted({d[:7] for d in days})
        self.first_day = chunks.window_start(days)
        self.timeline_day = chunks.window_start(days, TIMELINE_DAYS) or ""
        self.has_older = bool(days) and self.first_day is not None and days[0] < self.first_day
        self.kept: dict[str, str] | None = None
        self.written: list[Path] = []  # every page replaced so far, in order (see _record_partial)
        self.old: dict[str, dict[str, dict[str, Any]]] = {}
        since = self._incremental_since() if incremental else None
        _, self.folders = chunks.list_run_folders(runs_dir, since=since)
        self.firsts: dict[str, str] = {}  # by month: its first day read again (older rows come from its chunk)
        for f in self.folders:
            self.firsts[f.month] = min(self.firsts.get(f.month, f.day), f.day)

    def _incremental_since(self) -> str | None:
        """The first day whose manifests must be read; None (all) when no earlier write can be built on."""
        try:
            record = read_pages(self.runs_dir)
        except ArchiveError:
            return None
        if record is None or self.first_day is None:
            return None
        since = self.first_day
        for month in self.months:
            rel = chunk_rel(month)
            if month < self.timeline_day[:7]:  # before the timeline: never read, only required
                if rel not in record.pages or not (self.runs_dir / rel).is_file():
                    return None  # a chunk outside the window is missing: rebuild everything
                continue
            rows = chunks.read_chunk(self.runs_dir, month) if rel in record.pages else None
            if rows is None:
                since = min(since, f"{month}-01")  # a month without its chunk: read the whole month
            else:
                self.old[month] = rows
        self.kept = dict(record.pages)
        return since

    def _load(self) -> list[tuple[chunks.RunFolder, bytes, Manifest]]:
        loaded = []
        for folder in self.folders:
            try:
                raw = (folder.path / MANIFEST).read_bytes()
                manifest = Manifest.from_json(raw.decode("utf-8"), where=f"the manifest {folder.path / MANIFEST}")
            except (OSError, UnicodeDecodeError, ArchiveError) as err:
                log.warning("skipping an unreadable run folder %s: %s", folder.path, err)
                continue
            loaded.append((folder, raw, manifest))
        return sorted(loaded, key=lambda item: (item[2].started_at, item[2].run_id), reverse=True)

    def write(
        self, dead_letters: Sequence[DeadLetter] | None, missed: Sequence[MissedSlot] | None, jobs: Sequence[JobPage]
    ) -> list[Path]:
        """Render and write the changed run pages and chunks, the job pages, then the dashboard (last in the list)."""
        env = template_environment()
        css = Markup(_css())
        loaded = self._load()
        own = {job.name: job.retry_backoff_s for job in jobs if job.retry_backoff_s is not None}
        retries = retry_lines((m for _, _, m in loaded), self.backoff, now=self.now, job_backoff_s=own)
        views = [view_of(self.runs_dir, f.path, m, retries) for f, _, m in loaded]
        rels = {v.manifest.run_id: v.rel for v in views}
        fresh: dict[str, list[dict[str, Any]]] = {}
        for view, (folder, raw, manifest) in zip(views, loaded, strict=True):
            line = retries.get(manifest.run_id)
            if line is not None and line.superseded_by in rels:
                view.superseded_by = rels[line.superseded_by]
            row = row_of(view, raw)
            fresh.setdefault(folder.month, []).append(row)
            old = self.old.get(folder.month, {}).get(manifest.run_id)
            page = folder.path / RUN_PAGE
            if self.kept is not None and old is not None and old.get("key") == row["key"] and page.is_file():
                continue
            text = env.get_template("run.html").render(run=view, m=manifest, css=css, dump=_dump)
            self._put(page, text.encode("utf-8"))
        recent: list[dict[str, Any]] = []  # the rows of the timeline's days
        for month in sorted(set(fresh) | set(self.old)):
            since = self.firsts.get(month, "9999")
            merged = {r["id"]: r for r in self.old.get(month, {}).values() if r.get("day", "") < since}
            merged.update({r["id"]: r for r in fresh.get(month, [])})
            if month in fresh and chunks.write_chunk(self.runs_dir, month, list(merged.values()), self._put) is None:
                self.written.append(self.runs_dir / chunk_rel(month))  # unchanged: recorded as it is
            recent += [r for r in merged.values() if r.get("utc_day", "") >= self.timeline_day]
        first = [v for v in views if self.first_day is None or folder_day(v) >= self.first_day]
        missed = list(missed or [])
        generated = self.now.strftime("%Y-%m-%d %H:%M UTC")
        write_job_pages(  # of the window's runs: a run close writes what a whole rewrite does
            self.runs_dir,
            jobs,
            first,
            seen=chunks.job_names(self.runs_dir),
            dead_letters=list(dead_letters or []),
            missed=missed,
            env=env,
            css=css,
            generated=generated,
            put=self._put,
        )
        html = env.get_template("index.html").render(
            runs=first,
            css=css,
            generated=generated,
            jobs=sorted({v.manifest.job for v in views} | {m.job for m in missed} | chunks.job_names(self.runs_dir)),
            statuses=sorted(
                {str(v.manifest.status) for v in views}
                | ({str(s) for s in RunStatus} if self.has_older else set())
                | ({RunStatus.MISSED.value} if missed else set())
            ),
            timeline=timeline(recent, missed),
            headline=headline(views, self.performance_jobs) or self._older_headline(),
            dead_letters=list(dead_letters or []),
            missed=missed,
            failed=[v for v in first if listed_failed(v)],
            chunks=[chunk_rel(m) for m in reversed(self.months)],
            older=self.has_older,
            window_days=chunks.WINDOW_DAYS,
        )
        self._put(self.runs_dir / INDEX, html.encode("utf-8"))
        if self.kept is not None:
            for rel in [k for k in self.kept if k.startswith(f"{CHUNK_DIR}/")]:
                if rel not in {chunk_rel(m) for m in self.months}:
                    del self.kept[rel]  # a month that holds no run any more
        return self.written

    def _put(self, path: Path, data: bytes) -> None:
        write_atomic(path, data)
        self.written.append(path)

    def _older_headline(self) -> dict[str, Any] | None:
        """The headline from before the window (read month by month, newest first) when the window has none."""
        if self.kept is None:
            return None  # a whole rewrite read every manifest already
        retries: dict[str, RetryLine] = {}
        for month in reversed(self.months):
            found = [
                (d, m)
                for d, m in iter_manifests(self.runs_dir, month=month)
                if self.first_day is None or d.parent.name < self.first_day
            ]
            line = headline([view_of(self.runs_dir, d, m, retries) for d, m in found], self.performance_jobs)
            if line is not None:
                return line
        return None


def _dump(value: Any) -> str:
    """A value as compact, readable JSON text (escaped by the template)."""
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def _css() -> str:
    return (Path(__file__).parent / "templates" / "dashboard.css").read_text(encoding="utf-8")
