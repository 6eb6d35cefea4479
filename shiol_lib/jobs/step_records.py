"""A step's manifest record: built from a step that ran, or rendered from a step whose process died.

:func:`step_record` turns a :class:`StepOutcome` into the manifest's :class:`StepRecord`;
:func:`render_dead_step` renders what a crashed step had saved (used when a dead run is closed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from shiol_lib.archive.manifest import StepRecord
from shiol_lib.domain.runs import ErrorClass, StepStatus
from shiol_lib.errors import ShiolError
from shiol_lib.execution.outcome import ReportTitle, StepOutcome
from shiol_lib.jobs.catalog import STEPS, Step

log = logging.getLogger(__name__)


def step_record(step: Step, outcome: StepOutcome, *, command: str) -> StepRecord:
    """The manifest's record of a step that ran: everything :class:`StepOutcome` says, file names relative."""
    return StepRecord(
        name=step.name,
        notebook=step.notebook,
        status=outcome.status,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        parameters=dict(outcome.parameters),
        output=_name(outcome.output),
        html=_name(outcome.html),
        log=_name(outcome.log),
        error=outcome.error,
        error_class=str(outcome.error_class) if outcome.error_class is not None else None,
        failed_cell=outcome.failed_cell,
        command=command,
        peak_rss_mb=outcome.peak_rss_mb,
        cpu_s=outcome.cpu_s,
    )


def render_dead_step(
    step: StepRecord, reason: str, title: ReportTitle, *, directory: Path, notebooks_dir: Path
) -> None:
    """Render a crashed step's partial notebook (or, with none saved, its unexecuted one) into ``directory``.

    Sets the record's ``html``, ``output`` and ``log`` names; a failure to render is logged, never raised.
    """
    from shiol_lib.execution.runner import promote_partial, write_unexecuted_report  # nbconvert only here

    output = directory / f"{step.notebook.removesuffix('.ipynb')}.ipynb"
    about = {
        "run_id": title.run_id,
        "job": title.job,
        "target_draw_date": title.target_draw_date,
        "status": str(StepStatus.CRASHED),
        "error": f"crashed: the job process died during this step ({reason})",
    }
    try:
        banner = (
            f"**The job process died during this step ({reason}).** What follows is what the notebook "
            "had saved when it stopped."
        )
        html = promote_partial(output, banner=banner, tag="shiol-crashed", **about)
        if html is None:
            known = STEPS.get(step.name)
            source = notebooks_dir / (known.notebook if known else step.notebook)
            html = write_unexecuted_report(source, output, f"the job process died ({reason})", **about)
        step.html, step.output = html.name, output.name
        log_path = output.with_suffix(".log")
        step.log = log_path.name if log_path.exists() else None
    except (OSError, ShiolError, ValueError) as err:
        log.warning("run %s step %s: the partial notebook could not be rendered: %s", title.run_id, step.name, err)


def _name(path: Path | None) -> str | None:
    return path.name if path is not None else None


def close_dead_steps(steps: list[StepRecord], reason: str, *, render: Callable[[StepRecord], None] | None) -> list[int]:
    """Mark a dead run's steps: the running one ``crashed``, the pending ones ``skipped``.

    ``render`` draws the crashed step's partial notebook. Returns the positions (from 1) of the steps it
    changed, for the lifecycle to record.
    """
    changed = []
    for position, step in enumerate(steps, start=1):
        if step.status not in (StepStatus.RUNNING, StepStatus.PENDING):
            continue
        if step.status == StepStatus.RUNNING:
            step.error, step.error_class = f"the job process died during this step: {reason}", ErrorClass.CRASHED
            if render is not None:
                render(step)
            step.status = StepStatus.CRASHED
        else:
            step.status = StepStatus.SKIPPED
        changed.append(position)
    return changed
