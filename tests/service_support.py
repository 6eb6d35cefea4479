"""The scheduler service as a real process for tests: its environment, a free port, start and stop, and
waiting on it while it lives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import requests

REPO = Path(__file__).resolve().parents[1]
NEVER = "0 3 1 1 *"  # 03:00 on January 1st: keeps a job out of the way of a test
T = TypeVar("T")


def scheduler_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``python schedules.py`` with no job due and no network."""
    env = {
        **os.environ,
        "SHIOL_HOME": str(home),
        "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
        "SHIOL_HTTP_RETRIES": "0",
        "SHIOL_PIPELINE_CRON": NEVER,
        "SHIOL_UPDATE_CRON": NEVER,
        "SHIOL_EVALUATION_CRON": NEVER,
        "PYTHONPATH": str(REPO),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("SHIOL_MUSL_API_KEY", None)
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_scheduler(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``python schedules.py`` in its own process group, its output in ``log``; killed if still up at the end."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "schedules.py")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def stop_scheduler(proc: subprocess.Popen, log: Path) -> None:
    """SIGTERM, and a clean exit (0) within a minute."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


def wait_until(predicate: Callable[[], T | None], timeout_s: float, what: str, proc: subprocess.Popen, log: Path) -> T:
    """The first non-None value of ``predicate`` within ``timeout_s``; fails if the scheduler exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the scheduler exited: {log.read_text()[-3000:]}"
        if (value := predicate()) is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def healthz(url: str, timeout_s: float = 5.0) -> tuple[int, float] | None:
    """``/healthz``'s status and how long it took (None while the server is not up)."""
    started = time.monotonic()
    try:
        status = requests.get(f"{url}/healthz", timeout=timeout_s).status_code
    except requests.ConnectionError:
        return None
    return status, time.monotonic() - started


def healthz_is(url: str, status: int) -> Callable[[], bool | None]:
    """A :func:`wait_until` predicate: True once ``/healthz`` answers ``status``."""

    def check() -> bool | None:
        answer = healthz(url)
        return True if answer is not None and answer[0] == status else None

    return check
