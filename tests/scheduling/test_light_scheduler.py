"""The idle scheduler is light: the real process, started on a seeded store and scraped, has imported neither
the analysis stack nor papermill, nbformat or jupyter (they live in the job process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from service_support import REPO, free_port, scheduler_env

FORBIDDEN = (
    "pandas",
    "numpy",
    "sklearn",
    "xgboost",
    "matplotlib",
    "scipy",
    "papermill",
    "nbformat",
    "nbconvert",
    "jupyter_client",
    "jupyter_core",
    "zmq",
    "tornado",
    "jsonschema",
)


@pytest.mark.slow
def test_the_idle_scheduler_imports_no_analysis_stack_papermill_or_jupyter(tmp_path: Path):
    env = scheduler_env(tmp_path, SHIOL_API_PORT=str(free_port()), SHIOL_API_TOKEN="t0ken")
    seeded = subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", "update-data", "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stderr
    out = tmp_path / "probe.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scheduler_probe.py"), str(out), "--idle-s", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0 and out.exists(), done.stderr[-3000:]
    probe = json.loads(out.read_text())
    assert probe["scrapes"] == {"/api/v1/scheduler/health": 200, "/metrics": 200}  # the health API ran too
    modules = set(probe["modules"])
    assert {"rocketry", "duckdb", "shiol_lib.scheduling.scheduler", "shiol_lib.scheduling.health"} <= modules
    heavy = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert not heavy, heavy
