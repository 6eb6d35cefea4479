"""A real ``shiol lab`` for tests: its token, a free loopback port, its REST API, waiting for it to answer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiol_lib.cli.lab_server import LabServer

TOKEN = "test-token-123"
HANG_GUARD_S = 180.0  # JupyterLab answers in seconds; only a hang waits this long


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, method: str = "GET") -> object:
    request = urllib.request.Request(
        url, headers={"Authorization": f"token {TOKEN}"}, method=method, data=b"{}" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_lab(base: str) -> None:
    for _ in range(240):
        try:
            get(f"{base}/api/status")
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail("JupyterLab did not answer")


@contextlib.contextmanager
def serving_lab(server: LabServer, root: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run ``server`` (as ``shiol lab`` would) on ``root`` with ``env``, logging to ``log_path``; yield its URL.

    Waits until it answers (a generous hang guard, naming the log); stops it with SIGTERM at the end
    (SIGKILL to its process group after 60 s) and waits for it, so no process is left.
    """
    command = [f"--ServerApp.root_dir={root}" if p.startswith("--ServerApp.root_dir=") else p for p in server.command]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{server.port}"
        try:
            deadline = time.monotonic() + HANG_GUARD_S
            while True:
                assert proc.poll() is None, log_path.read_text()
                status = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {server.token}"})
                with contextlib.suppress(OSError), urllib.request.urlopen(status, timeout=5):
                    break
                assert time.monotonic() < deadline, "JupyterLab did not answer: " + log_path.read_text()
                time.sleep(0.3)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
