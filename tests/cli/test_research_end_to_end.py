"""``shiol research`` end to end, as a script uses it: real subprocesses, a real store, kernels and archive.

A small backtest (two skipped drawings, two backtested) and a tiny power study print the figures the
issue asks for as JSON, archive a report with its manifest and ledger entry, and verify. A backtest
stopped by SIGTERM while its sweep cell runs is recorded ``interrupted`` in the store and the manifest,
leaves no research rows in the store, and the archive still verifies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import nbformat
import pytest

SHIOL = [sys.executable, "-m", "shiol_lib.cli"]


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update({"SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": "http://127.0.0.1:9", "SHIOL_HTTP_RETRIES": "0"})
    return env


def shiol(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHIOL, *args], env=env_for(home), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = shiol(home, "update-data", "--offline")
    assert done.returncode == 0, done.stderr
    return home


def ledger_runs(home: Path) -> dict[str, dict]:
    lines = (home / "runs" / "ledger.jsonl").read_text().splitlines()
    return {entry["run_id"]: entry for entry in map(json.loads, lines)}


def store_rows(home: Path, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(home / "var" / "shiol.duckdb"), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def check_archived(home: Path, data: dict, job: str, notebook: str) -> dict:
    """The run folder sits under runs/<job>/<day>/<run id> with its report and manifest; the ledger has it."""
    folder = Path(data["directory"])
    assert folder.parent.parent == home / "runs" / job and folder.name == data["run_id"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_id"] == data["run_id"] and manifest["job"] == job
    assert (folder / f"{notebook}.html").stat().st_size > 0 and (folder / f"{notebook}.ipynb").exists()
    assert data["run_id"] in ledger_runs(home)
    return manifest


@pytest.mark.slow
def test_backtest_and_power_print_their_figures_archive_a_report_and_verify(home: Path) -> None:
    done = shiol(
        home, "research", "backtest", "--from", "2016-04-13", "--to", "2016-04-23", "--cluster", "none", "--json"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bt = json.loads(done.stdout)
    assert bt["status"] == "success" and bt["cluster"] == "none" and bt["error"] is None
    assert bt["drawings"] == 2 and bt["tickets"] == 200
    assert bt["first_target"] == "2016-04-20" and bt["last_target"] == "2016-04-23"
    low, high = bt["white_ci"]
    assert low <= bt["mean_white_matches"] <= high and 0 <= bt["p_value"] <= 1
    assert bt["expected_white_matches"] == pytest.approx(25 / 69)
    assert bt["skipped"]["drawings"] == 2 and (bt["skipped"]["from"], bt["skipped"]["to"]) == (
        "2016-04-13",
        "2016-04-16",
    )
    assert bt["skipped"]["needed"] == 56 and bt["skipped"]["available"] == 54 and bt["skipped"]["reason"]
    assert bt["tasks_by_worker"] == {"in-process": 2}
    manifest = check_archived(home, bt, "research_backtest", "80_research_backtest")
    assert manifest["status"] == "success"
    report = (Path(bt["directory"]) / "80_research_backtest.html").read_text()
    assert "Skipped 2 drawing(s)" in report and "2016-04-13 .. 2016-04-16" in report

    done = shiol(
        home,
        "research",
        "power",
        "--strengths",
        "3.0",
        "--drawings",
        "20",
        "--histories",
        "2",
        "--cluster",
        "none",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    power = json.loads(done.stdout)
    assert power["status"] == "success" and power["histories"] == 2
    assert [(c["strength"], c["drawings"], c["histories"]) for c in power["cells"]] == [(3.0, 20, 2)]
    assert 0 <= power["cells"][0]["detection_rate"] <= 1
    assert power["tasks_by_worker"] == {"in-process": 2}
    check_archived(home, power, "research_power", "81_detection_power")

    verified = shiol(home, "runs", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert {bt["run_id"], power["run_id"]} <= set(ledger_runs(home))


def sweep_cell_running(home: Path) -> bool:
    """Papermill saved the partial notebook with the sweep cell started (it saves at each cell start)."""
    for partial in (home / "runs" / "research_backtest").glob("*/*/80_research_backtest.ipynb.partial"):
        try:
            nb = nbformat.read(partial, as_version=4)
        except Exception:  # noqa: BLE001 - caught while papermill writes it: look again
            return False
        return any(
            "steps.research_backtest(" in c.source and c.metadata.get("papermill", {}).get("status") == "running"
            for c in nb.cells
        )
    return False


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_is_recorded_interrupted_with_nothing_half_written(home: Path) -> None:
    job = subprocess.Popen(
        [*SHIOL, "research", "backtest", "--from", "2024-01-01", "--to", "2024-04-30", "--cluster", "none", "--json"],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not sweep_cell_running(home):
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "the sweep cell never started"
        time.sleep(0.2)
    job.send_signal(signal.SIGTERM)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 6, out + err
    data = json.loads(out)
    assert data["status"] == "interrupted" and "SIGTERM" in data["error"], data

    folder = Path(data["directory"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["steps"][0]["status"] == "interrupted"
    assert not list(folder.glob("*.partial"))
    nb = nbformat.read(folder / "80_research_backtest.ipynb", as_version=4)
    sweep = next(c for c in nb.cells if "steps.research_backtest(" in c.source)
    assert sweep.metadata["papermill"]["status"] != "completed"  # stopped mid-sweep, not after it
    assert store_rows(home, "SELECT status FROM runs WHERE run_id = ?", data["run_id"]) == [("interrupted",)]
    assert store_rows(home, "SELECT kind FROM artifacts WHERE run_id = ?", data["run_id"]) == []
    assert ledger_runs(home)[data["run_id"]]["status"] == "interrupted"

    verified = shiol(home, "runs", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
