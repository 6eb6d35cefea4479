"""The scheduler service: a taken API port refuses to start (the loop that never stalls behind a held
store, or under load, is in tests/faults/test_scheduler_faults.py)."""

from __future__ import annotations

import socket
import subprocess
import sys

from service_support import REPO, scheduler_env


def test_a_taken_api_port_refuses_to_start_with_exit_2_before_scheduler_up(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(REPO / "schedules.py")],
            env=scheduler_env(tmp_path, SHIOL_API_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "SHIOL_API_PORT" in done.stderr
    assert "scheduler up" not in done.stderr
    assert not (tmp_path / "var").exists()  # refused before the store was opened
