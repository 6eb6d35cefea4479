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
from shiol_lib.archive.folders import iter_manifests, write_atomic
from shiol_lib.archive.manifest import Manifest
from shiol_lib.archive.pages import record_pages
from shiol_lib.domain.runs import MissedKind, RunStatus
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
) -> Path:
    """Regenerate ``runs/index.html`` and every run's page from the manifests in the archive.

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

    Returns:
        The dashboard's path.
    """
    runs_dir = Path(runs_dir)
    with ledger.locked(runs_dir):  # the pages and their record show one ledger head
        head = ledger.head(runs_dir)
        written = _write_pages(
            runs_dir, dead_letters, missed, retry_backoff_s, now or datetime.now(UTC), performance_jobs
        )
        record_pages(runs_dir, written, head, key=ledger_key)
    return written[-1]


def _write_pages(
    runs_dir: Path,
    dead_letters: Sequence[DeadLetter] | None,
    missed: Sequence[MissedSlot] | None,
    retry_backoff_s: Sequence[float] | None,
    now: datetime,
    performance_jobs: Collection[str] | None,
) -> list[Path]:
    """Render and write every run page, then the dashboard (last in the list)."""
    env = template_environment()
    css = Markup(_css())
    found = list(iter_manifests(runs_dir))
    backoff = tuple(retry_backoff_s) if retry_backoff_s is not None else setting_default("retry_backoff_s")
    retries = retry_lines((m for _, m in found), backoff, now=now)
    views = [_view(runs_dir, directory, manifest, retries) for directory, manifest in found]
    folders = {v.manifest.run_id: v.rel for v in views}
    written = []
    for view, (directory, manifest) in zip(views, found, strict=True):
        line = retries.get(manifest.run_id)
        if line is not None and line.superseded_by in folders:
            view.superseded_by = folders[line.superseded_by]
        page = env.get_template("run.html").render(run=view, m=manifest, css=css, dump=_dump)
        write_atomic(directory / RUN_PAGE, page.encode("utf-8"))
        written.append(directory / RUN_PAGE)
    missed = list(missed or [])
    page = env.get_template("index.html").render(
        runs=views,
        css=css,
        generated=now.strftime("%Y-%m-%d %H:%M UTC"),
        jobs=sorted({v.manifest.job for v in views} | {m.job for m in missed}),
        statuses=sorted({str(v.manifest.status) for v in views} | ({RunStatus.MISSED.value} if missed else set())),
        timeline=_timeline(views, missed),
        headline=_headline(views, performance_jobs),
        dead_letters=list(dead_letters or []),
        missed=missed,
        failed=[v for v in views if _listed_failed(v)],
    )
    path = runs_dir / INDEX
    write_atomic(path, page.encode("utf-8"))
    written.append(path)
    return written


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
