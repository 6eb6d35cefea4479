"""Processes a step leaves behind: the interruption signal of a job process and killing a process tree.

:class:`Interrupted` is what a job process's SIGTERM handler raises in its main thread
(:func:`shiol_lib.jobs.liveness.interrupt_on_sigterm`); the runner lets it pass after keeping the
partial notebook. :func:`kill_process_tree` stops a kernel and whatever its cells started;
:func:`die_with` makes a child die with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Callable

import psutil

_PR_SET_PDEATHSIG = 1


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


def set_parent_death_signal(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when the thread that started it ends (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    The signal follows the parent's starting thread: start the child from a thread that lives as long
    as the parent (its main thread).
    """

    def arm() -> None:
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
