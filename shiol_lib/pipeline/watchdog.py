"""A watchdog that makes a step's processes die with their job, whoever kills the job.

``python -m shiol_lib.pipeline.watchdog JOB_PID PAPERMILL_PID`` runs in a session of its own (so a
kill of the job's process group misses it) and polls every ``POLL_S``: it remembers every descendant
of the papermill process (the kernel and whatever a cell started, each with its start time) and, as
soon as the job process or papermill is gone, SIGKILLs every remembered process that still exists,
then exits. Papermill itself gets ``PR_SET_PDEATHSIG`` (it dies the instant its parent does); the
kernel, which jupyter starts in a session of its own, and the kernel's children are this watchdog's.
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


def start_watchdog(job_pid: int, papermill_pid: int) -> subprocess.Popen:
    """Start the watchdog for one papermill process of this job process."""
    return subprocess.Popen(
        [sys.executable, "-m", "shiol_lib.pipeline.watchdog", str(job_pid), str(papermill_pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _alive(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        return process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def watch(job_pid: int, papermill_pid: int) -> int:
    """Follow papermill's descendants until the job or papermill ends; then kill what is left of them."""
    try:
        job = psutil.Process(job_pid)
        papermill = psutil.Process(papermill_pid)
        job_started, papermill_started = job.create_time(), papermill.create_time()
    except psutil.NoSuchProcess:
        return 0
    seen: dict[int, float] = {}
    while _alive(job_pid, job_started) and _alive(papermill_pid, papermill_started):
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in papermill.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    seen.setdefault(child.pid, child.create_time())
        time.sleep(POLL_S)
    if _alive(papermill_pid, papermill_started):  # the job died first: papermill goes too
        seen[papermill_pid] = papermill_started
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
