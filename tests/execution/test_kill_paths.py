"""Runs never outlive their job, whoever kills it, and a crashed run is closed, not forgotten.

A real ``shiol run data_update`` whose step notebook starts a child process and then sleeps is killed
three ways: SIGKILL of its process group, SIGKILL of the job process alone, and SIGKILL of the step's
kernel (papermill runs inside the job process). The process tree captured before the kill must be gone
afterwards (the kernel, its children, the watchdogs, a next step's spare kernel); the next
``shiol run`` closes the dead run as ``crashed`` (rendered report, manifest, ledger entry, anchor) and
records it as its parent; ``shiol runs verify`` is clean.
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
import psutil
import pytest
from notebook_support import short_notebooks

REPO = Path(__file__).resolve().parents[2]
SHIOL = str(Path(sys.executable).parent / "shiol")
STALL = """import os, pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(os.environ["TEST_MARKER_FILE"]).write_text(str(child.pid))
time.sleep(600)"""


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(
        {
            "SHIOL_HOME": str(home),
            "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
            "SHIOL_HTTP_RETRIES": "0",
            "SHIOL_HEARTBEAT_S": "0.5",
            "SHIOL_HEARTBEAT_STALE_S": "5",
            **extra,
        }
    )
    return env


def stalling_notebooks(folder: Path) -> Path:
    """A notebooks folder whose data-update step starts a child, says so, and stalls."""
    folder.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "10_update_data.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(STALL))
    nbformat.write(nb, str(folder / "10_update_data.ipynb"))
    return folder


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def wait_gone(processes: list[psutil.Process], timeout_s: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return alive


def step_kernel(marker: Path) -> psutil.Process:
    """The kernel running the stalled step: the parent of the child its cell started."""
    kernel = psutil.Process(int(marker.read_text())).parent()
    assert kernel is not None and "ipykernel" in " ".join(kernel.cmdline())
    return kernel


def runs_json(home: Path) -> list[dict]:
    done = subprocess.run([SHIOL, "runs", "list", "--json"], env=env_for(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = subprocess.run([SHIOL, "update-data", "--offline"], env=env_for(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return home


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["group", "job", "kernel"])
def test_no_descendant_survives_and_the_dead_run_is_closed(home: Path, tmp_path: Path, victim: str) -> None:
    marker = tmp_path / "child.pid"
    env = env_for(
        home, SHIOL_NOTEBOOKS_DIR=str(stalling_notebooks(tmp_path / "notebooks")), TEST_MARKER_FILE=str(marker)
    )
    job = subprocess.Popen(
        [SHIOL, "run", "data_update", "--offline", "--json"],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, "the step never started its child"
        time.sleep(0.2)
    time.sleep(1.0)  # let papermill save the running cell
    before = tree(job.pid)
    names = " ".join(" ".join(p.cmdline()) for p in before)
    assert "ipykernel" in names and "shiol_lib.execution.watchdog" in names and "time.sleep(600)" in names
    assert not any("papermill" in " ".join(p.cmdline()) for p in before)  # no papermill CLI child any more
    if victim == "group":
        os.killpg(job.pid, signal.SIGKILL)
    elif victim == "job":
        os.kill(job.pid, signal.SIGKILL)
    else:
        step_kernel(marker).send_signal(signal.SIGKILL)
    if victim == "kernel":
        out, err = job.communicate(timeout=120)
        assert job.returncode == 6, err
        outcome = json.loads(out)
        step = outcome["manifest"]["steps"][0]
        assert outcome["status"] == "failed" and step["error_class"] == "kernel death", step
        assert "the kernel died" in step["error"]
    else:
        job.wait(timeout=30)
    survivors = wait_gone([p for p in before if p.pid != job.pid])
    assert survivors == [], [" ".join(p.cmdline()) for p in survivors]

    if victim != "kernel":
        assert [r["status"] for r in runs_json(home)] == ["running"]  # nobody has noticed yet
        time.sleep(1)
        again = subprocess.run(
            [SHIOL, "run", "data_update", "--offline", "--json"],
            env=env_for(home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr
        runs = runs_json(home)
        assert [r["status"] for r in runs] == ["success", "crashed"]
        recovered, crashed = runs
        assert recovered["parent_run_id"] == crashed["run_id"]
        assert crashed["finished_at"] == crashed["heartbeat_at"]  # ended at its last beat, not when noticed
        folder = Path(crashed["archive_dir"])
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["status"] == "crashed" and manifest["steps"][0]["status"] == "crashed"
        html = (folder / "10_update_data.html").read_text()
        assert "The job process died during this step" in html and ">crashed<" in html
        assert "time.sleep(600)" in (folder / "10_update_data.ipynb").read_text()  # the code stays in the notebook
        assert not list(folder.glob("*.partial"))
        index = (home / "runs" / "index.html").read_text()
        assert crashed["run_id"] in index and 'status status-crashed">crashed<' in index
    verified = subprocess.run([SHIOL, "runs", "verify"], env=env_for(home), capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
def test_a_step_stopped_before_its_first_cell_still_leaves_a_report(home: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [SHIOL, "run", "data_update", "--offline", "--json"],
        capture_output=True,
        text=True,
        env=env_for(home, SHIOL_RUN_TIMEOUT_S="1"),
        timeout=300,
    )
    assert done.returncode == 6
    outcome = json.loads(done.stdout)
    step = outcome["manifest"]["steps"][0]
    assert outcome["status"] == "timeout" and step["status"] == "timeout"
    assert "wall-clock limit" in step["error"]
    html = Path(outcome["directory"]) / step["html"]  # a report whether or not papermill saved a cell
    text = html.read_text()
    assert 'class="status status-timeout"' in text
    assert "did not run to its first cell" in text or "wall-clock limit" in text or "Kernel" in text


@pytest.mark.slow
def test_a_malformed_archived_manifest_never_stops_the_next_run_or_prune(home: Path) -> None:
    first = subprocess.run(
        [SHIOL, "run", "data_update", "--offline", "--json"],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    damaged = Path(json.loads(first.stdout)["directory"]) / "manifest.json"
    damaged.write_text("[]")
    second = subprocess.run(
        [SHIOL, "run", "data_update", "--offline", "--json"],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert "skipping an unreadable run folder" in second.stderr and str(damaged) in second.stderr
    statuses = [r["status"] for r in runs_json(home)]
    assert statuses == ["success", "success"]
    pruned = subprocess.run(
        [SHIOL, "runs", "prune", "--keep-days", "0"], env=env_for(home), capture_output=True, text=True, timeout=120
    )
    assert pruned.returncode == 0, pruned.stderr
    verified = subprocess.run([SHIOL, "runs", "verify"], env=env_for(home), capture_output=True, text=True)
    assert verified.returncode == 8 and "was changed after the run" in verified.stderr
    assert "Traceback" not in verified.stderr


PIPELINE_NOTEBOOKS = [
    "10_update_data",
    "20_analyze_signals",
    "30_optimize_weights",
    "40_validate_history",
    "50_generate_predictions",
    "60_analyze_performance",
]
VICTIMS = ["group", "job", "kernel"]


@pytest.mark.slow
@pytest.mark.parametrize("position", range(6), ids=PIPELINE_NOTEBOOKS)
def test_a_pipeline_killed_during_each_step_leaves_no_process_and_no_ticket(
    home: Path, tmp_path: Path, position: int
) -> None:
    """Each step in turn, each kill path in turn: no descendant survives, the dead run is closed by the
    next command that runs, its tickets never count, and the archive verifies."""
    victim = VICTIMS[position % 3]
    folder = short_notebooks(tmp_path / "notebooks")  # the kill paths, not the model
    victim_notebook = folder / f"{PIPELINE_NOTEBOOKS[position]}.ipynb"
    nb = nbformat.read(victim_notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(STALL))  # the stall goes last: the step has done its work
    nbformat.write(nb, str(victim_notebook))
    marker = tmp_path / "child.pid"
    env = env_for(home, SHIOL_NOTEBOOKS_DIR=str(folder), TEST_MARKER_FILE=str(marker))
    job = subprocess.Popen(
        [SHIOL, "run", "pipeline", "--offline", "--json"],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 400
    while not marker.exists():
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, f"step {position + 1} never started its child"
        time.sleep(0.2)
    time.sleep(1.0)
    before = tree(job.pid)
    kernels = [p for p in before if "ipykernel" in " ".join(p.cmdline())]
    assert len(kernels) == (2 if position < 5 else 1), "the next step's kernel is started while a step runs"
    if victim == "group":
        os.killpg(job.pid, signal.SIGKILL)
    elif victim == "job":
        os.kill(job.pid, signal.SIGKILL)
    else:
        step_kernel(marker).send_signal(signal.SIGKILL)
    job.communicate(timeout=300)
    survivors = wait_gone([p for p in before if p.pid != job.pid])
    assert survivors == [], [" ".join(p.cmdline()) for p in survivors]
    noticed = subprocess.run(
        [SHIOL, "run", "data_update", "--offline"], env=env_for(home), capture_output=True, text=True, timeout=300
    )  # any later run notices and closes a dead one
    assert noticed.returncode == 0, noticed.stderr
    runs = {r["job"]: r for r in runs_json(home)}
    pipeline = runs["pipeline"]
    assert pipeline["status"] == ("failed" if victim == "kernel" else "crashed")
    with duckdb.connect(str(home / "var" / "shiol.snapshot.duckdb"), read_only=True) as conn:
        tickets = conn.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [pipeline["run_id"]]).fetchone()
    if victim != "kernel":
        assert tickets == (0,)  # a crashed run's tickets are discarded, never counted beside its recovery's
    manifest = json.loads((Path(pipeline["archive_dir"]) / "manifest.json").read_text())
    assert manifest["status"] == pipeline["status"]
    assert manifest["steps"][position]["status"] == ("failed" if victim == "kernel" else "crashed")
    if victim == "kernel":
        assert manifest["steps"][position]["error_class"] == "kernel death"
    assert all(s["status"] == "skipped" for s in manifest["steps"][position + 1 :])
    assert (Path(pipeline["archive_dir"]) / f"{PIPELINE_NOTEBOOKS[position]}.html").exists()
    verified = subprocess.run([SHIOL, "runs", "verify"], env=env_for(home), capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
