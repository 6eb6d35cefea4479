"""The per-step command `shiol runs show` prints never writes under the archived run's id in the live store.

Here the command line itself; pasting it after a real pipeline run (step 5 with `-p seed 1`: the new
tickets go to a scratch copy of the store, the live store keeps the run's 100 tickets, `shiol runs verify`
stays clean) is tests/jobs/test_jobs.py::test_a_pasted_step_command_leaves_the_archived_runs_outputs_in_the_live_store,
on that module's pipeline run.
"""

from __future__ import annotations

from pathlib import Path

from shiol_lib.execution.runner import SCRATCH_STORE, rerun_command

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
