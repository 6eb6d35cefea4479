"""The archive benchmark's builder stays runnable: the runs it writes through the real lifecycle are ones
the real ``shiol runs verify`` accepts (the benchmark is not a test, but its machinery must not rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import archive_build  # noqa: E402 - bench/ is not a package


def test_the_archive_benchmark_builds_runs_that_verify(tmp_path: Path) -> None:
    runs = archive_build.schedule(12)
    archive_build.build(tmp_path, runs[:11])  # the cached build: one held connection, files not synced
    archive_build.build_one(tmp_path, runs[11])  # the measured close: as in operation
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    done = subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", "runs", "verify", "--json"],
        env={**env, "SHIOL_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["intact"] and report["runs"] == report["entries"] == 12 and report["problems"] == []
    assert {m.parent.parent.parent.name for m in (tmp_path / "runs").glob("*/*/*/manifest.json")} == {
        r.job for r in runs
    }
