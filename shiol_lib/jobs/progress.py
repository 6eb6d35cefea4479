"""Progress of a job while it runs: one line as each step starts and one as it ends.

:class:`Progress` is what the job runner calls (:meth:`Progress.step_started`,
:meth:`Progress.step_ended`). :class:`LogProgress` (the default: the scheduler's job process, whose
stderr is the scheduler's log) writes one log record per start and end, naming the run, job and step.
:class:`StreamProgress` writes to a stream (the CLI's stderr): on a terminal a short line per step and
papermill's per-cell progress bar (:attr:`Progress.cells`), otherwise exactly one line per start and
end with run id, job and step, and nothing else.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

log = logging.getLogger(__name__)


class Progress:
    """Told as each step of a run starts and ends; does nothing itself."""

    cells = False  # whether papermill shows its per-cell progress bar (on stderr)

    def step_started(self, run_id: str, job: str, position: int, total: int, step: str) -> None:
        """Step ``position`` of ``total`` of run ``run_id`` starts."""

    def step_ended(
        self, run_id: str, job: str, position: int, total: int, step: str, status: str, seconds: float
    ) -> None:
        """Step ``position`` of ``total`` of run ``run_id`` ended with ``status`` after ``seconds``."""


def describe_start(run_id: str, job: str, position: int, total: int, step: str) -> str:
    """``run R job J step 2/6 S started`` (the line logs and pipes get)."""
    return f"run {run_id} job {job} step {position}/{total} {step} started"


def describe_end(run_id: str, job: str, position: int, total: int, step: str, status: str, seconds: float) -> str:
    """``run R job J step 2/6 S ended: success in 5.3 s`` (the line logs and pipes get)."""
    return f"run {run_id} job {job} step {position}/{total} {step} ended: {status} in {seconds:.1f} s"


class LogProgress(Progress):
    """One INFO log record per step start and end."""

    def step_started(self, run_id: str, job: str, position: int, total: int, step: str) -> None:
        """Log the start."""
        log.info("%s", describe_start(run_id, job, position, total, step))

    def step_ended(
        self, run_id: str, job: str, position: int, total: int, step: str, status: str, seconds: float
    ) -> None:
        """Log the end."""
        log.info("%s", describe_end(run_id, job, position, total, step, status, seconds))


class StreamProgress(Progress):
    """Step lines on ``stream`` (default stderr); on a terminal papermill's per-cell bar too."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream) if tty is None else tty
        self.cells = self.tty

    def step_started(self, run_id: str, job: str, position: int, total: int, step: str) -> None:
        """Write the start line."""
        if self.tty:
            self._write(f"[{position}/{total}] {step} ({job}, run {run_id})")
        else:
            self._write(describe_start(run_id, job, position, total, step))

    def step_ended(
        self, run_id: str, job: str, position: int, total: int, step: str, status: str, seconds: float
    ) -> None:
        """Write the end line."""
        if self.tty:
            self._write(f"[{position}/{total}] {step}: {status} in {seconds:.1f} s")
        else:
            self._write(describe_end(run_id, job, position, total, step, status, seconds))

    def task_started(self, task: str) -> None:
        """A command's work that is not a run (``update-data``) starts."""
        self._write(f"{task} ..." if self.tty else f"{task} started")

    def task_ended(self, task: str, status: str, seconds: float) -> None:
        """It ended with ``status`` after ``seconds``."""
        ended = f"{task}:" if self.tty else f"{task} ended:"
        self._write(f"{ended} {status} in {seconds:.1f} s")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
