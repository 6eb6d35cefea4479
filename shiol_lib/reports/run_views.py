"""One run as the pages show it: the view the templates render, the row of its month's chunk, the timeline."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

from shiol_lib.archive.manifest import Manifest
from shiol_lib.domain.runs import MissedKind, RunStatus
from shiol_lib.reports.retry_lines import RetryLine
from shiol_lib.reports.run_chunks import page_key
from shiol_lib.store.monitoring import MissedSlot

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


def view_of(runs_dir: Path, directory: Path, manifest: Manifest, retries: Mapping[str, RetryLine]) -> RunView:
    """The view of a run: its folder relative to ``runs_dir``, its error line, retry line and step links."""
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
    try:
        present = set(os.listdir(directory))  # one listing, not one stat per link
    except OSError:
        present = set()
    for step in manifest.steps:
        links = {
            label: name
            for label, name in (("report", step.html), ("notebook", step.output), ("log", step.log))
            if name and name in present
        }
        view.steps.append({"record": step, "links": links})
    return view


def row_of(view: RunView, raw: bytes) -> dict[str, Any]:
    """A run as a row of its month's chunk (what the dashboard's script and timeline show of it)."""
    m = view.manifest
    links = [
        [str(s["record"].name), str(s["record"].status), s["links"].get("report", ""), s["links"].get("notebook", "")]
        for s in view.steps
    ]
    return {
        "id": m.run_id,
        "rel": view.rel,
        "day": folder_day(view),
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
        "key": page_key(raw, view.next_retry, view.superseded_by, links),
    }


def folder_day(view: RunView) -> str:
    """The run's day folder (New York date): the month chunk it belongs to."""
    return view.rel.split("/")[1] if view.rel.count("/") >= 2 else view.day


def listed_failed(view: RunView) -> bool:
    """Whether the run is listed under "Failed runs": a failure, or a run SIGTERM interrupted."""
    status = RunStatus(view.manifest.status)
    return status.is_failure or status == RunStatus.INTERRUPTED


def timeline(rows: list[dict[str, Any]], missed: list[MissedSlot]) -> dict[str, Any]:
    """Days (newest last, at most :data:`TIMELINE_DAYS`) by job: each cell the runs and misses of that day."""
    cells: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in sorted(rows, key=lambda r: (r["started"], r["id"]), reverse=True):
        cells.setdefault((row["job"], row["utc_day"]), []).append(
            {
                "status": row["status"],
                "href": f"{row['rel']}/{RUN_PAGE}",
                "title": f"{row['id']} {row['status']} ({row['trigger']})",
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


def headline(views: list[RunView], jobs: Collection[str] | None) -> dict[str, Any] | None:
    """The performance of the latest successful run of ``jobs`` (None: any job) against the exact baseline."""
    for view in sorted(views, key=lambda v: v.manifest.started_at, reverse=True):
        metrics = view.manifest.metrics.get(PERFORMANCE_STEP)
        if (jobs is None or view.manifest.job in jobs) and view.manifest.status == RunStatus.SUCCESS and metrics:
            report = next((s["links"].get("report") for s in view.steps if s["record"].name == PERFORMANCE_STEP), None)
            return {"run": view, "metrics": metrics, "report": f"{view.rel}/{report}" if report else None}
    return None
