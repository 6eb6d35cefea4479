"""What one step execution produced, as the runner hands it back: a typed, frozen :class:`StepOutcome`.

:func:`find_failed_cell` and :func:`find_running_cell` read where an executed notebook stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shiol_lib.domain.runs import ErrorClass, StepStatus


@dataclass(frozen=True)
class ReportTitle:
    """What a step's HTML report names in its title and error block besides the step's own status."""

    run_id: str | None = None
    job: str | None = None
    target_draw_date: str | None = None  # ISO date, "" when the run has none


@dataclass(frozen=True)
class StepOutcome:
    """How one step ended and what it left: status, error, timings, resources and artefact paths.

    ``html`` is rendered (with the :class:`ReportTitle` the caller gave and this status), or for a job's
    step with more to come, being rendered by the job's kernel pool until it settles or closes;
    ``output`` is the executed (or unexecuted, bannered) notebook and ``log`` the step's log, each
    ``None`` when not written.
    """

    notebook: Path  # the source notebook
    status: StepStatus  # success | failed | timeout | waiting
    started_at: datetime
    finished_at: datetime
    parameters: dict[str, Any]
    command: tuple[str, ...]  # the plain papermill CLI call that re-runs it
    error_class: ErrorClass | None = None
    error: str | None = None
    failed_cell: int | None = None  # the failing (or, on a timeout, running) cell's index in the source notebook
    output: Path | None = None
    html: Path | None = None
    log: Path | None = None
    peak_rss_mb: float | None = None  # of the kernel's process tree (the kernel and what its cells started)
    cpu_s: float | None = None

    @property
    def duration_s(self) -> float:
        """Wall-clock seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


_ADDED_BY_PAPERMILL = frozenset({"injected-parameters", "papermill-error-cell-tag"})


def _source_cells(nb: Any) -> list[tuple[int, Any]]:
    """Cells of an executed notebook with their index in the source notebook.

    Papermill's own injected-parameters cell and error banners are left out.
    """
    kept = [c for c in nb.cells if not _ADDED_BY_PAPERMILL & set(c.get("metadata", {}).get("tags", []))]
    return list(enumerate(kept))


def find_failed_cell(nb: Any) -> tuple[int, str] | None:
    """(source cell index, message) of the first cell that raised."""
    for index, cell in _source_cells(nb):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
                name = str(out.get("ename"))
                return index, f"cell {index} ({first_line!r}) raised {name}: {out.get('evalue')}"
    return None


def find_running_cell(nb: Any) -> int | None:
    """The cell that was running when the step was stopped, else the last one started.

    :mod:`shiol_lib.execution.engine` keeps a stopped cell ``running``.
    """
    started = None
    for index, cell in _source_cells(nb):
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("status") == "running":
            return index
        if meta.get("start_time"):
            started = index
    return started
