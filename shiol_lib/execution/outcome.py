"""What one step execution produced, as the runner hands it back: a typed, frozen :class:`StepOutcome`."""

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

    ``html`` is already rendered (with the :class:`ReportTitle` the caller gave and this status);
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
