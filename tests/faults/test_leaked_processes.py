"""Leaked processes (issue 21, class 8): SIGTERM to `shiol lab` used to leave its `jupyter-lab` child running,
orphaned. Each signal a person or a service manager sends (SIGTERM, SIGINT) is tried on a real `shiol lab`
with a kernel running, and on a real `shiol run pipeline` in its first step (kernel and watchdog running):
the command must exit and every process it started must be gone. (The suite's own leaks are caught by
the session-end fixture in tests/conftest.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from lab_support import TOKEN, free_port, get, wait_for_lab

pytestmark = [pytest.mark.slow, pytest.mark.faults("leaked-processes")]

REPO = Path(__file__).resolve().parents[2]
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(SHIOL_HOME=str(home), SHIOL_NOTEBOOKS_DIR=str(REPO / "notebooks"), **extra)
    return env


def _assert_stops_with_its_family(command: subprocess.Popen, family: list[psutil.Process], signum: int) -> None:
    """Send ``signum``; the command must exit and every process of ``family`` be gone (killed after, anyway)."""
    try:
        command.send_signal(signum)
        assert command.wait(timeout=120) is not None
        _, alive = psutil.wait_procs(family, timeout=30)
        assert alive == [], f"left running: {[(p.pid, p.cmdline()) for p in alive]}"
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=30)
        for process in family:
            if process.is_running():
                process.kill()


@SIGNALS
def test_a_signal_to_shiol_lab_stops_the_server_and_its_kernels(tmp_path: Path, signum: int) -> None:
    port = free_port()
    lab = subprocess.Popen(
        [sys.executable, "-m", "shiol_lib.cli", "lab", "--port", str(port)],
        env=_env(tmp_path, SHIOL_LAB_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    family: list[psutil.Process] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_lab(base)
        get(f"{base}/api/kernels", method="POST")  # a kernel, as a notebook opened in the lab starts one
        family = psutil.Process(lab.pid).children(recursive=True)
        assert len(family) >= 2, family  # jupyter-lab and its kernel
    finally:
        _assert_stops_with_its_family(lab, family, signum)


@SIGNALS
def test_a_signal_to_a_pipeline_run_in_step_1_stops_its_kernel_and_watchdog(tmp_path: Path, signum: int) -> None:
    env = _env(tmp_path, SHIOL_NY_BASE_URL="http://127.0.0.1:9", SHIOL_HTTP_RETRIES="0")
    run = subprocess.Popen(
        [sys.executable, "-m", "shiol_lib.cli", "run", "pipeline", "--offline"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300  # a hang guard
        while not any("ipykernel" in " ".join(_cmdline(p)) for p in family):
            assert run.poll() is None and time.monotonic() < deadline, "no kernel started"
            time.sleep(0.2)
            family = psutil.Process(run.pid).children(recursive=True)
        time.sleep(1)  # let the step's watchdog join its kernel
        family = psutil.Process(run.pid).children(recursive=True)
    finally:
        _assert_stops_with_its_family(run, family, signum)
    assert run.returncode != 0  # an interrupted run is never a success


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []
