"""Run the real scheduler and, once it is idle, write what its process imported and how much memory it holds.

    SHIOL_HOME=... SHIOL_API_PORT=... [SHIOL_API_TOKEN=...] python bench/scheduler_probe.py OUT.json [--idle-s 3]

Starts :func:`shiol_lib.scheduling.app.main` (Rocketry, the planning thread and the health API, exactly as
``shiol schedule run``) with a watcher thread beside it. The watcher waits for ``/healthz`` to answer 200 (a
first plan made), scrapes ``/api/v1/scheduler/health`` and ``/metrics`` when a token is set, lets the
scheduler idle ``--idle-s`` seconds, writes ``{"modules": [...], "rss_mb": ..., "uss_mb": ...}`` to OUT.json
and stops the scheduler with SIGTERM, as systemd would. Used by tests/scheduling/test_light_scheduler.py
and bench/idle_scheduler.py; the watcher itself imports only the standard library and psutil.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def _watch(out: Path, idle_s: float) -> None:
    base = f"http://127.0.0.1:{os.environ['SHIOL_API_PORT']}"
    token = os.environ.get("SHIOL_API_TOKEN")
    deadline = time.monotonic() + 120
    status = None
    while status != 200:
        if time.monotonic() > deadline:
            print(f"probe: /healthz never answered 200 (last {status})", file=sys.stderr)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        try:
            status = _get(f"{base}/healthz")
        except OSError:
            status = None
        time.sleep(0.1)
    scrapes = {path: _get(base + path, token) for path in ("/api/v1/scheduler/health", "/metrics")} if token else {}
    time.sleep(idle_s)
    memory = psutil.Process().memory_full_info()
    out.write_text(
        json.dumps(
            {
                "modules": sorted(sys.modules),
                "rss_mb": memory.rss / 2**20,
                "uss_mb": memory.uss / 2**20,
                "pss_mb": memory.pss / 2**20,
                "scrapes": scrapes,
            }
        )
    )
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--idle-s", type=float, default=3.0)
    args = parser.parse_args()
    threading.Thread(target=_watch, args=(args.out, args.idle_s), name="probe", daemon=True).start()
    from shiol_lib.scheduling.app import main as scheduler_main

    scheduler_main()


if __name__ == "__main__":
    main()
