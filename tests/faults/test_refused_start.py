"""`shiol run` of a busy job answers at once: exit 9 before the runner is imported or a process started
(issue 21, class 9: a second `shiol run pipeline` used to be refused after ~11 s). Every job is tried.

The command runs in a real process under an audit hook (``sys.addaudithook``) that writes down every
process it starts and every import of papermill, nbformat or jupyter_client: what used to take ~11 s
before a refusal (importing the runner, starting the first kernel) must not happen at all. No clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_holder_support import hold_job

from shiol_lib.domain.runs import ExitCode, RunStatus
from shiol_lib.jobs.catalog import DATA_UPDATE, EVALUATION, PIPELINE
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store
from shiol_lib.store import runs as run_table

# `shiol ARGS...` with an audit hook that records each process started and each import of the runner's packages.
AUDITED_SHIOL = """
import sys
record = open(sys.argv[1], "w", buffering=1)
RUNNER = ("papermill", "nbformat", "jupyter_client")

def hook(event, args):
    if event in ("subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec", "os.system"):
        record.write(f"spawn {args[0]!r}\\n")
    elif event == "import" and args[0].split(".")[0] in RUNNER:
        record.write(f"import {args[0]}\\n")

sys.addaudithook(hook)
sys.argv = ["shiol", *sys.argv[2:]]
from shiol_lib.cli.main import main
main()
"""


def _audited(home: Path, record: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": "http://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-c", AUDITED_SHIOL, str(record), *args], env=env, capture_output=True, text=True, timeout=300
    )  # a hang guard only


@pytest.mark.faults("slow-answers")
def test_a_second_pipeline_start_is_refused_before_the_runner_or_a_kernel(tmp_path: Path) -> None:
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    open_store(settings.db_path, settings.snapshot_path)
    with hold_job(tmp_path, PIPELINE.name) as (holder, holder_run):
        # The audit itself sees what it looks for: a step start (free job) imports the runner and starts a
        # kernel before its bad parameter is refused.
        control = _audited(
            tmp_path, tmp_path / "control.txt", "run", "step", "generate_predictions", "-p", "run_id", holder_run
        )
        assert control.returncode == ExitCode.USAGE, control.stderr
        seen = (tmp_path / "control.txt").read_text()
        assert "import nbformat" in seen and "spawn" in seen

        refused = _audited(tmp_path, tmp_path / "refused.txt", "run", PIPELINE.name, "--offline")
        assert refused.returncode == ExitCode.BUSY, refused.stdout + refused.stderr
        assert f"already running (run {holder_run}, pid {holder.pid}" in refused.stderr
        assert (tmp_path / "refused.txt").read_text() == ""  # nothing started, the runner never imported
    rows = run_table.list_runs(open_store(settings.db_path, settings.snapshot_path), job=PIPELINE.name)
    assert [row.status for row in rows] == [RunStatus.REFUSED, RunStatus.RUNNING]


@pytest.mark.faults("slow-answers")
@pytest.mark.parametrize("job", [DATA_UPDATE.name, EVALUATION.name])
def test_a_second_start_of_any_job_is_refused_before_the_runner(tmp_path: Path, job: str) -> None:
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    open_store(settings.db_path, settings.snapshot_path)
    with hold_job(tmp_path, job) as (holder, holder_run):
        refused = _audited(tmp_path, tmp_path / "refused.txt", "run", job, "--offline", "--json")
        assert refused.returncode == ExitCode.BUSY, refused.stdout + refused.stderr
        assert f"already running (run {holder_run}, pid {holder.pid}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert (tmp_path / "refused.txt").read_text() == ""
    rows = run_table.list_runs(open_store(settings.db_path, settings.snapshot_path), job=job)
    assert [row.status for row in rows] == [RunStatus.REFUSED, RunStatus.RUNNING]
