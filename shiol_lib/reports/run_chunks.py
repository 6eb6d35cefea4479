"""The dashboard's older runs: one small script per month (``runs/_index/runs-YYYY-MM.js``), loaded on demand.

The dashboard's first page shows the runs of its newest :data:`WINDOW_DAYS` days (its timeline, six
weeks, is drawn from the chunks' rows). Every run, newest
first, is also a row in the chunk of its month (the month of its day folder), so the dashboard's
filters and pager reach all runs offline: a ``<script>`` element loads a chunk from disk (``file:``
allows it where ``fetch`` does not) and each chunk calls ``shiolRuns(month, rows)``.

A month's rows change only while its days are inside the window (a new run, a retry line that
moved on; a retry line older than the window stays as it was last written): a run close rewrites
at most the chunks of the window's months, and the page of a run only when its ``key`` (its
manifest's bytes, its retry line and its links) changed. A chunk before the timeline's six weeks is
never read or rewritten. Every chunk is a page of the pages record
(:mod:`shiol_lib.archive.pages`), so ``shiol runs verify`` checks its bytes like any page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from shiol_lib.archive.folders import MANIFEST
from shiol_lib.archive.hashing import sha256_bytes
from shiol_lib.archive.pages import CHUNK_DIR, chunk_rel
from shiol_lib.errors import ArchiveError

WINDOW_DAYS = 14  # the first page: the runs of the newest two weeks of day folders
_PREFIX = "shiolRuns("
_NOT_JOBS = frozenset({CHUNK_DIR, "reruns"})


@dataclass(frozen=True)
class RunFolder:
    """A run folder found in the archive, with its day folder's date."""

    day: str
    path: Path

    @property
    def month(self) -> str:
        """``YYYY-MM`` of its day folder: the chunk it belongs to."""
        return self.day[:7]


def list_run_folders(runs_dir: Path, *, since: str | None = None) -> tuple[list[str], list[RunFolder]]:
    """Every day folder's date in the archive, and the run folders of the days from ``since`` (all when None).

    Only the day folders of ``since`` and later are listed inside: a run close looks at the window only.
    """
    days: list[str] = []
    found = []
    for job in _dirs(runs_dir):
        if job.name in _NOT_JOBS:
            continue
        for day in _dirs(job):
            days.append(day.name)
            if since is None or day.name >= since:
                found += [RunFolder(day.name, run) for run in _dirs(day) if (run / MANIFEST).is_file()]
    return sorted(set(days)), found


def job_names(runs_dir: Path) -> set[str]:
    """The job folders' names: every job that has a run folder."""
    return {job.name for job in _dirs(runs_dir) if job.name not in _NOT_JOBS}


def window_start(days: list[str], length: int = WINDOW_DAYS) -> str | None:
    """The first day of a window of ``length`` days ending at the newest day folder (None: no day)."""
    if not days:
        return None
    return (date.fromisoformat(days[-1]) - timedelta(days=length - 1)).isoformat()


def page_key(manifest_bytes: bytes, retry: str, superseded_by: str | None, links: list[list[str]]) -> str:
    """What a run's page shows, hashed: when it is unchanged, the page is not rewritten."""
    return sha256_bytes(manifest_bytes + json.dumps([retry, superseded_by, links]).encode("utf-8"))


def read_chunk(runs_dir: Path, month: str) -> dict[str, dict[str, Any]] | None:
    """The rows of a month's chunk by run id; None when it is missing or not a chunk (it is then rebuilt)."""
    try:
        text = (Path(runs_dir) / chunk_rel(month)).read_text(encoding="utf-8")
        if not text.startswith(_PREFIX):
            return None
        _, rows = json.loads("[" + text[len(_PREFIX) :].rstrip().removesuffix(";").removesuffix(")") + "]")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in rows):
        return None
    return {r["id"]: r for r in rows}


def write_chunk(
    runs_dir: Path, month: str, rows: list[dict[str, Any]], put: Callable[[Path, bytes], None]
) -> Path | None:
    """Write a month's chunk (rows newest first, with ``put``); its path, or None when its bytes are unchanged."""
    rows = sorted(rows, key=lambda r: (r["started"], r["id"]), reverse=True)
    data = f"{_PREFIX}{json.dumps(month)}, {json.dumps(rows, separators=(',', ':'), sort_keys=True)});\n".encode()
    path = Path(runs_dir) / chunk_rel(month)
    try:
        if path.read_bytes() == data:
            return None
    except OSError:
        pass
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as err:
        raise ArchiveError(f"could not create {path.parent}: {err.strerror}") from err
    put(path, data)
    return path


def _dirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []
