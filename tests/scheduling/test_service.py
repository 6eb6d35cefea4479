"""The scheduler service: a taken API port refuses to start; the loop never stalls behind the store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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
