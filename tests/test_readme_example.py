"""The README's worked example of an analyst job ("Analyst jobs" > "A worked example"), run as written.

The commands are read from the README's block (so the README cannot drift from the code) and each runs
for real, as ``shiol`` in a subprocess, in a temporary SHIOL_HOME; ``RUN_ID`` is the id ``shiol jobs run``
printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "### A worked example"


def example_commands() -> list[list[str]]:
    """The ``shiol`` command lines of the worked example's first ``bash`` block, comments dropped."""
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, f"the README lost its section {HEADING!r}"
    block = text.split(HEADING, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_example_block_is_found_and_holds_only_shiol_commands():
    commands = example_commands()
    assert [c[:2] for c in commands][:3] == [["shiol", "update-data"], ["shiol", "jobs"], ["shiol", "jobs"]]
    assert all(c[0] == "shiol" for c in commands) and ["shiol", "rerun", "RUN_ID"] in commands


@pytest.mark.slow
def test_the_readme_worked_example_runs_as_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(SHIOL_HOME=str(tmp_path), SHIOL_NY_BASE_URL="http://127.0.0.1:9", SHIOL_HTTP_RETRIES="0")
    outputs: dict[str, str] = {}
    run_id = None
    for command in example_commands():
        if "RUN_ID" in command:
            assert run_id, "the example reruns a run before it ran one"
            command = [run_id if word == "RUN_ID" else word for word in command]
        done = subprocess.run(
            [sys.executable, "-m", "shiol_lib.cli", *command[1:]], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{shlex.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}"
        outputs[" ".join(command[1:3])] = done.stdout
        if command[1:3] == ["jobs", "run"]:
            run_id = re.match(r"run (\S+) \(weekly-frequencies\): success", done.stdout).group(1)

    assert "weekly-frequencies: cron 0 7 * * 1 (America/New_York); next run " in outputs["jobs list"]
    assert re.search(r"next weekly-frequencies +\S+ ET \(\S+ UTC\)", outputs["schedule plan"])
    assert run_id in outputs["runs list"] and "weekly-frequencies manual" in outputs["runs list"]
    assert outputs["runs verify"].startswith("archive intact")
    assert "outputs identical" in outputs[f"rerun {run_id}"]
    manifest = json.loads(next(tmp_path.glob(f"runs/weekly-frequencies/*/{run_id}/manifest.json")).read_text())
    assert manifest["steps"][0]["parameters"]["recent"] == 30  # the -p of `jobs add`, typed by the notebook
