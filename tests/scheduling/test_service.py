"""The scheduler service: a taken API port refuses to start; the loop never stalls behind the store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from store_support import locked_by_another_process

REPO = Path(__file__).resolve().parents[2]
NEVER = "0 3 1 1 *"  # 03:00 on January 1st: keeps a job out of the way of a test


def scheduler_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``python schedules.py`` with no job due and no network."""
    env = {**os.environ, "SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
           "SHIOL_HTTP_RETRIES": "0", "SHIOL_PIPELINE_CRON": NEVER, "SHIOL_UPDATE_CRON": NEVER,
           "SHIOL_EVALUATION_CRON": NEVER, "PYTHONPATH": str(REPO)}
    env.pop("SHIOL_MUSL_API_KEY", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_taken_api_port_refuses_to_start_with_exit_2_before_scheduler_up(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, str(REPO / "schedules.py")],
                              env=scheduler_env(tmp_path, SHIOL_API_PORT=str(port)),
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "SHIOL_API_PORT" in done.stderr
    assert "scheduler up" not in done.stderr
    assert not (tmp_path / "var").exists()  # refused before the store was opened


def _start(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "schedules.py")], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _until(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the scheduler exited: {log.read_text()[-3000:]}"
        if (value := predicate()) is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def _healthz(url: str) -> int | None:
    """/healthz's status, asserting it answered within a second (None while the server is not up)."""
    started = time.monotonic()
    try:
        status = requests.get(f"{url}/healthz", timeout=1.0).status_code
    except requests.ConnectionError:
        return None
    assert time.monotonic() - started < 1.0
    return status


@pytest.mark.slow
def test_healthz_answers_from_memory_while_another_process_holds_the_store_and_under_load(tmp_path):
    port, token, log = free_port(), "t0ken", tmp_path / "scheduler.log"
    env = scheduler_env(tmp_path, SHIOL_API_PORT=str(port), SHIOL_API_TOKEN=token, SHIOL_PLAN_MAX_AGE_S="3",
                        SHIOL_LOCK_TIMEOUT_S="20", SHIOL_SCHEDULER_CYCLE_S="0.2")
    url = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path, env, log)
    try:
        _until(lambda: True if _healthz(url) == 200 else None, 60, "a fresh plan", proc, log)
        with locked_by_another_process(tmp_path / "var" / "shiol.duckdb"):
            assert _healthz(url) == 200  # the plan is still fresh: answered from memory
            locked_at = time.monotonic()
            _until(lambda: True if _healthz(url) == 503 else None, 10, "/healthz to say the plan is stale",
                   proc, log)
            assert time.monotonic() - locked_at >= 3 - 1.0  # not before the plan could be 3 s old
            started = time.monotonic()
            report = requests.get(f"{url}/api/v1/scheduler/health", headers={"Authorization": f"Bearer {token}"},
                                  timeout=15)
            assert report.status_code == 503 and time.monotonic() - started < 7
        _until(lambda: True if _healthz(url) == 200 else None, 30, "a fresh plan after the lock", proc, log)

        def hit(n: int) -> int:
            path = ("/healthz", "/api/v1/scheduler/health", "/metrics")[n % 3]
            return requests.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=15).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = list(pool.map(hit, range(200)))
        assert time.monotonic() - started < 60
        assert set(statuses) <= {200, 429, 503} and statuses.count(200) > 0, statuses
        assert _healthz(url) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
