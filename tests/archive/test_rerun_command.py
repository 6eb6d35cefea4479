"""The per-step command `shiol runs show` prints never writes under the archived run's id in the live store.

The slow test runs a real pipeline, then pastes the printed command for step 5 with one parameter
changed (`-p seed 1`), as an analyst would: the new tickets go to a scratch copy of the store in
runs/reruns/, the live store keeps the run's 100 tickets, and `shiol runs verify` stays clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from shiol_lib.execution.runner import SCRATCH_STORE, rerun_command
from shiol_lib.store import open_store
from shiol_lib.store import predictions as prediction_table

SHIOL = str(Path(sys.executable).parent / "shiol")
RUN_ID = "20261128T151500Z-a1b2c3"


def test_the_command_runs_on_a_copy_of_the_snapshot_that_no_added_parameter_overrides(tmp_path: Path) -> None:
    notebook = tmp_path / "nb" / "50_generate_predictions.ipynb"
    line = rerun_command(
        notebook,
        {"db_path": str(tmp_path / "var" / "shiol.duckdb"), "run_id": RUN_ID, "seed": 3},
        cwd=notebook.parent,
        runs_dir=tmp_path / "runs",
        run_id=RUN_ID,
    )
    assert f'cp {tmp_path / "var" / "shiol.snapshot.duckdb"} "$out"/{SCRATCH_STORE} && ' in line
    assert line.endswith(f'-r db_path "$out"/{SCRATCH_STORE}')  # -r is applied after every -p and -y
    assert f"out={tmp_path / 'runs' / 'reruns' / RUN_ID}/$(date -u" in line
    without_store = rerun_command(notebook, {"a": 1}, cwd=notebook.parent, runs_dir=tmp_path / "runs", run_id=RUN_ID)
    assert "cp " not in without_store and "-r db_path" not in without_store


def _shiol(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": "http://127.0.0.1:9", "SHIOL_HTTP_RETRIES": "0"}
    env.pop("SHIOL_MUSL_API_KEY", None)
    return subprocess.run([SHIOL, *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_a_pasted_step_command_leaves_the_archived_runs_outputs_in_the_live_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _shiol(home, "run", "pipeline", "--offline", "--json")  # no source is reachable here
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    shown = _shiol(home, "runs", "show", run_id)
    line = next(
        x.split("rerun: ", 1)[1] for x in shown.stdout.splitlines() if "rerun: " in x and "50_generate_predictions" in x
    )
    store = open_store(home / "var" / "shiol.duckdb")
    before = prediction_table.output_hashes(store, run_id)
    pasted = subprocess.run(
        ["bash", "-c", line + " -p seed 1"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SHIOL_HOME": str(home)},
    )
    assert pasted.returncode == 0, pasted.stderr[-2000:]
    assert prediction_table.output_hashes(store, run_id) == before
    scratch = next((home / "runs" / "reruns" / run_id).glob(f"*/{SCRATCH_STORE}"))
    with duckdb.connect(str(scratch), read_only=True) as conn:
        rerun = conn.execute(
            "SELECT n1, n2, n3, n4, n5, pb FROM predictions WHERE run_id = ? ORDER BY rank", [run_id]
        ).fetchall()
    assert (
        len(rerun) == 100
        and prediction_table.output_hashes(open_store(scratch), run_id)["predictions"] != before["predictions"]
    )  # the rerun did write other tickets: to the scratch copy
    verified = _shiol(home, "runs", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
