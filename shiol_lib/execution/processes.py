"""Processes a step leaves behind: the interruption signal of a job process and killing a process tree.

:class:`Interrupted` is what a job process's SIGTERM handler raises in its main thread
(:func:`shiol_lib.jobs.liveness.interrupt_on_sigterm`); the runner lets it pass after keeping the
partial notebook. :func:`kill_process_tree` stops a kernel and whatever its cells started.
"""

from __future__ import annotations

import contextlib
import signal

import psutil


class Interrupted(Exception):  # noqa: N818 - a signal, not an error of ours
    """Raised in the main thread by the SIGTERM handler of a job process."""


def kill_process_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every descendant (kernels start their own sessions, so a group kill is not enough)."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
