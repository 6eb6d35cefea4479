"""``runs/index.html``, the run dashboard, and one readable page per run beside its manifest.

Static pages that open from disk with no server: relative links only, inline CSS and an inline filter
script, nothing fetched. :func:`write_index` walks the stages in order: read every manifest -> build
the view (timeline by job and day, latest performance against the baseline, failed runs with their
error line, open dead letters, missed drawings) -> render with jinja2 (autoescaped: anything from data,
parameters or errors renders as text) -> write each run's ``index.html`` and the dashboard atomically
-> record their hashes (:mod:`shiol_lib.archive.pages`, checked by ``shiol runs verify``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup

from shiol_lib.archive import ledger
from shiol_lib.archive.folders import MANIFEST, iter_manifests, write_atomic
from shiol_lib.archive.manifest import Manifest
from shiol_lib.archive.pages import CHUNK_DIR, chunk_rel, read_pages, record_pages
from shiol_lib.domain.runs import MissedKind, RunStatus
from shiol_lib.errors import ArchiveError
from shiol_lib.reports import run_chunks as chunks
from shiol_lib.reports.report import template_environment
from shiol_lib.reports.retry_lines import RetryLine, retry_lines
from shiol_lib.settings import default as setting_default
from shiol_lib.store import Store
from shiol_lib.store.jobs import DeadLetter
from shiol_lib.store.monitoring import MissedSlot, missed_slots, open_dead_letters

log = logging.getLogger(__name__)

INDEX = "index.html"
RUN_PAGE = "index.html"  # beside manifest.json in each run's folder
TIMELINE_DAYS = 42
PERFORMANCE_STEP = "performance_analysis"  # the step whose metrics hold the latest performance


@dataclass
class RunView:
    """One run as the dashboard shows it."""

    manifest: Manifest
    rel: str  # the run folder relative to runs/
    day: str
    error_line: str
    next_retry: str  # what comes next, in words (:mod:`shiol_lib.reports.retry_lines`); empty for none
    superseded_by: str | None = None  # the rel folder of the run that superseded this one
    steps: list[dict[str, Any]] = field(default_factory=list)


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
        written = pages.write(dead_letters, missed)
        record_pages(runs_dir, written, head, key=ledger_key, kept=pages.kept)
    return runs_dir / INDEX


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
        self.has_older = bool(days) and self.first_day is not None and days[0] < self.first_day
        self.kept: dict[str, str] | None = None
        self.old: dict[str, dict[str, dict[str, Any]] | None] = {}
        since = self.first_day if incremental else None
        if incremental:
            since = self._incremental_since()
        _, self.folders = chunks.list_run_folders(runs_dir, since=since)

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
            if month < since[:7]:  # outside the window: never read, only required
                if rel not in record.pages or not (self.runs_dir / rel).is_file():
                    return None  # a chunk outside the window is missing: rebuild everything
                continue
            rows = chunks.read_chunk(self.runs_dir, month) if rel in record.pages else None
            self.old[month] = rows
            if rows is None:
                since = min(since, f"{month}-01")  # a window month without its chunk: read the whole month
        self.kept = dict(record.pages)
        return since

    def write(self, dead_letters: Sequence[DeadLetter] | None, missed: Sequence[MissedSlot] | None) -> list[Path]:
        """Render and write the changed run pages and chunks, then the dashboard (last in the list)."""
        env = template_environment()
        css = Markup(_css())
        loaded = []
        for folder in self.folders:
            try:
                raw = (folder.path / MANIFEST).read_bytes()
                manifest = Manifest.from_json(raw.decode("utf-8"), where=f"the manifest {folder.path / MANIFEST}")
            except (OSError, UnicodeDecodeError, ArchiveError) as err:
                log.warning("skipping an unreadable run folder %s: %s", folder.path, err)
                continue
            loaded.append((folder, raw, manifest))
        loaded.sort(key=lambda item: (item[2].started_at, item[2].run_id), reverse=True)
        retries = retry_lines((m for _, _, m in loaded), self.backoff, now=self.now)
        views = [_view(self.runs_dir, f.path, m, retries) for f, _, m in loaded]
        rels = {v.manifest.run_id: v.rel for v in views}
        written: list[Path] = []
        fresh: dict[str, list[dict[str, Any]]] = {}
        for view, (folder, raw, manifest) in zip(views, loaded, strict=True):
            line = retries.get(manifest.run_id)
            if line is not None and line.superseded_by in rels:
                view.superseded_by = rels[line.superseded_by]
            row = _row(view, raw)
            fresh.setdefault(folder.month, []).append(row)
            old = (self.old.get(folder.month) or {}).get(manifest.run_id)
            page = folder.path / RUN_PAGE
            if self.kept is not None and old is not None and old.get("key") == row["key"] and page.is_file():
                continue
            text = env.get_template("run.html").render(run=view, m=manifest, css=css, dump=_dump)
            write_atomic(page, text.encode("utf-8"))
            written.append(page)
        for month, rows in sorted(fresh.items()):
            merged = {r["id"]: r for r in (self.old.get(month) or {}).values() if r.get("day", "") < self._since(month)}
            merged.update({r["id"]: r for r in rows})
            chunks.write_chunk(self.runs_dir, month, list(merged.values()))
            written.append(self.runs_dir / chunk_rel(month))
        first = [v for v in views if self.first_day is None or _folder_day(v) >= self.first_day]
        headline = _headline(views, self.performance_jobs) or _older_headline(self, views)
        missed = list(missed or [])
        page = env.get_template("index.html").render(
            runs=first,
            css=css,
            generated=self.now.strftime("%Y-%m-%d %H:%M UTC"),
            jobs=sorted({v.manifest.job for v in views} | {m.job for m in missed} | self.jobs),
            statuses=sorted(
                {str(v.manifest.status) for v in views}
                | ({str(s) for s in RunStatus} if self.has_older else set())
                | ({RunStatus.MISSED.value} if missed else set())
            ),
            timeline=_timeline(first, missed),
            headline=headline,
            dead_letters=list(dead_letters or []),
            missed=missed,
            failed=[v for v in first if _listed_failed(v)],
            chunks=[chunk_rel(m) for m in reversed(self.months)],
            older=self.has_older,
            window_days=chunks.WINDOW_DAYS,
        )
        path = self.runs_dir / INDEX
        write_atomic(path, page.encode("utf-8"))
        written.append(path)
        if self.kept is not None:
            for rel in [k for k in self.kept if k.startswith(f"{CHUNK_DIR}/")]:
                if rel not in {chunk_rel(m) for m in self.months}:
                    del self.kept[rel]  # a month that holds no run any more
        return written

    @property
    def jobs(self) -> set[str]:
        """The job folders' names: every job that has a run (the job filter's choices)."""
        return chunks.job_names(self.runs_dir)

    def _since(self, month: str) -> str:
        """Rows of ``month`` before this day are kept from its old chunk (they were not read again)."""
        return min((f.day for f in self.folders if f.month == month), default="9999")

def _folder_day(view: RunView) -> str:
    return view.rel.split("/")[1] if view.rel.count("/") >= 2 else view.day


def _row(view: RunView, raw: bytes) -> dict[str, Any]:
    """A run as a row of its month's chunk (what the dashboard's script shows for an older run)."""
    m = view.manifest
    links = [
        [str(s["record"].name), str(s["record"].status), s["links"].get("report", ""), s["links"].get("notebook", "")]
        for s in view.steps
    ]
    return {
        "id": m.run_id,
        "rel": view.rel,
        "day": _folder_day(view),
        "utc_day": view.day,
        "job": m.job,
        "status": str(m.status),
        "trigger": str(m.trigger),
        "attempt": m.attempt,
        "started": m.started_at.isoformat()[:19].replace("T", " "),
        "target": m.target_draw_date.isoformat() if m.target_draw_date else "",
        "duration": f"{m.duration_s:.1f} s" if m.duration_s is not None else "",
        "error": view.error_line,
        "retry": view.next_retry,
        "superseded": view.superseded_by or "",
        "steps": links,
        "key": chunks.page_key(raw, view.next_retry, view.superseded_by, links),
    }


def _older_headline(pages: _Pages, views: list[RunView]) -> dict[str, Any] | None:
    """The headline from before the window (read month by month, newest first) when the window has none."""
    if pages.kept is None:
        return None  # a whole rewrite read every manifest already
    retries: dict[str, RetryLine] = {}
    for month in reversed(pages.months):
        found = [
            (d, m)
            for d, m in iter_manifests(pages.runs_dir, month=month)
            if pages.first_day is None or d.parent.name < pages.first_day
        ]
        older = [_view(pages.runs_dir, d, m, retries) for d, m in found]
        headline = _headline(older, pages.performance_jobs)
        if headline is not None:
            return headline
    return None


def _listed_failed(view: RunView) -> bool:
    """Whether the run is listed under "Failed runs": a failure, or a run SIGTERM interrupted."""
    status = RunStatus(view.manifest.status)
    return status.is_failure or status == RunStatus.INTERRUPTED


def _view(runs_dir: Path, directory: Path, manifest: Manifest, retries: Mapping[str, RetryLine]) -> RunView:
    rel = Path(os.path.relpath(directory, runs_dir)).as_posix()
    error = (manifest.error or "").strip().splitlines()
    retry = retries.get(manifest.run_id)
    view = RunView(
        manifest,
        rel,
        manifest.started_at.astimezone(UTC).date().isoformat(),
        error[0][:400] if error else "",
        retry.text if retry else "",
    )
    for step in manifest.steps:
        links = {
            label: name
            for label, name in (("report", step.html), ("notebook", step.output), ("log", step.log))
            if name and (directory / name).exists()
        }
        view.steps.append({"record": step, "links": links})
    return view


def _timeline(views: list[RunView], missed: list[MissedSlot]) -> dict[str, Any]:
    """Days (newest last, at most :data:`TIMELINE_DAYS`) by job: each cell the runs and misses of that day."""
    cells: dict[tuple[str, str], list[dict[str, str]]] = {}
    for view in views:
        cells.setdefault((view.manifest.job, view.day), []).append(
            {
                "status": str(view.manifest.status),
                "href": f"{view.rel}/{RUN_PAGE}",
                "title": f"{view.manifest.run_id} {view.manifest.status} ({view.manifest.trigger})",
            }
        )
    for miss in missed:
        day = (miss.draw_date or miss.slot.date()).isoformat()
        what = f"drawing {miss.draw_date}" if miss.kind == MissedKind.DRAW else f"slot {miss.slot.isoformat()[:16]}"
        cells.setdefault((miss.job, day), []).append(
            {"status": RunStatus.MISSED.value, "href": "#missed", "title": f"missed {what}"}
        )
    if not cells:
        return {"days": [], "rows": []}
    last = max(date.fromisoformat(day) for _, day in cells)
    first = max(min(date.fromisoformat(day) for _, day in cells), last - timedelta(days=TIMELINE_DAYS - 1))
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    jobs = sorted({job for job, _ in cells})
    return {"days": days, "rows": [{"job": job, "cells": [cells.get((job, d), []) for d in days]} for job in jobs]}


def _headline(views: list[RunView], jobs: Collection[str] | None) -> dict[str, Any] | None:
    """The performance of the latest successful run of ``jobs`` (None: any job) against the exact baseline."""
    for view in sorted(views, key=lambda v: v.manifest.started_at, reverse=True):
        metrics = view.manifest.metrics.get(PERFORMANCE_STEP)
        if (jobs is None or view.manifest.job in jobs) and view.manifest.status == RunStatus.SUCCESS and metrics:
            report = next((s["links"].get("report") for s in view.steps if s["record"].name == PERFORMANCE_STEP), None)
            return {"run": view, "metrics": metrics, "report": f"{view.rel}/{report}" if report else None}
    return None


def _dump(value: Any) -> str:
    """A value as compact, readable JSON text (escaped by the template)."""
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def _css() -> str:
    return (Path(__file__).parent / "templates" / "dashboard.css").read_text(encoding="utf-8")
