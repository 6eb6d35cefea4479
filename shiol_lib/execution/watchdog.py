"""A watchdog that makes a step's processes die with their job, whoever kills the job.

``python -m shiol_lib.execution.watchdog JOB_PID KERNEL_PID`` runs in a session of its own (so a kill
of the job's process group misses it) and polls every ``POLL_S``: it remembers every descendant of the
kernel (whatever a cell started, each with its start time) and, as soon as the job process or the
kernel is gone, SIGKILLs the kernel (if the job died first) and every remembered process that still
exists, then exits. The kernel itself also gets ``PR_SET_PDEATHSIG`` (it dies the instant the job
process does); the kernel's children, which may start sessions of their own, are this watchdog's.
Importing the module does nothing; it imports only the standard library and psutil.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import psutil

POLL_S = 0.2


def start_watchdog(job_pid: int, kernel_pid: int) -> subprocess.Popen:
    """Start the watchdog for one kernel of this job process."""
    return subprocess.Popen(
        [sys.executable, "-m", "shiol_lib.execution.watchdog", str(job_pid), str(kernel_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _alive(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        return process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def watch(job_pid: int, kernel_pid: int) -> int:
    """Follow the kernel's descendants until the job or the kernel ends; then kill what is left of them."""
    try:
        job = psutil.Process(job_pid)
        kernel = psutil.Process(kernel_pid)
        job_started, kernel_started = job.create_time(), kernel.create_time()
    except psutil.NoSuchProcess:
        return 0
    seen: dict[int, float] = {}
    while _alive(job_pid, job_started) and _alive(kernel_pid, kernel_started):
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in kernel.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    seen.setdefault(child.pid, child.create_time())
        time.sleep(POLL_S)
    if _alive(kernel_pid, kernel_started):  # the job died first: the kernel goes too
        seen[kernel_pid] = kernel_started
    survivors = []
    for pid, started in seen.items():
        if _alive(pid, started):
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                process.send_signal(signal.SIGKILL)
                survivors.append(process)
    psutil.wait_procs(survivors, timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(watch(int(sys.argv[1]), int(sys.argv[2])))
