"""Benchmark: CPU the scheduler uses while it holds its three jobs idle.

Starts ``python schedules.py`` (the real Rocketry app, health API included) on a seeded store whose
jobs have nothing due, lets it settle, then measures the process's CPU time over a window, for two
values of SHIOL_SCHEDULER_CYCLE_S. Prints percent of one core and the ratio between them.

    .venv/bin/python bench/idle_scheduler.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
NEVER = "0 3 1 1 *"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(home: Path, cycle_s: str, seconds: float) -> float:
    env = {**os.environ, "SHIOL_HOME": str(home), "SHIOL_PIPELINE_CRON": NEVER, "SHIOL_UPDATE_CRON": NEVER,
           "SHIOL_EVALUATION_CRON": NEVER, "SHIOL_SCHEDULER_CYCLE_S": cycle_s, "SHIOL_API_PORT": str(free_port())}
    proc = subprocess.Popen([sys.executable, str(REPO / "schedules.py")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # imports, start-up, first plans
        watched = psutil.Process(proc.pid)
        before = sum(watched.cpu_times()[:2])
        time.sleep(seconds)
        used = sum(watched.cpu_times()[:2]) - before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return 100.0 * used / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        subprocess.run([str(Path(sys.executable).parent / "shiol"), "update-data", "--offline"],
                       env={**os.environ, "SHIOL_HOME": str(home)}, check=True, capture_output=True)
        results = {cycle: measure(home, cycle, args.seconds) for cycle in ("1.0", "0.1")}
    for cycle, percent in results.items():
        print(f"cycle_sleep {cycle:>4} s: {percent:.2f} % of one core idle (3 jobs, {args.seconds:.0f} s window)")
    print(f"ratio 0.1 s / 1.0 s: {results['0.1'] / max(results['1.0'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
