"""A real ``shiol lab`` for tests: its token, a free loopback port, its REST API, waiting for it to answer."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

TOKEN = "test-token-123"


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
