"""The notebook pipeline end to end: real papermill runs in a temp SHIOL_HOME, driven by the CLI.

The module's one pipeline run is read by the tests in file order; those that add to its home (a pasted
step command's scratch folder, a rerun) come after the ones that count its runs, and check only what they
added or what must hold whatever the archive holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import nbformat
import pytest

from shiol_lib.archive.verify import verify_ledger
from shiol_lib.execution.runner import SCRATCH_STORE
from shiol_lib.store import open_store
from shiol_lib.store import predictions as prediction_table

REPO = Path(__file__).resolve().parents[2]
SHIOL = str(Path(sys.executable).parent / "shiol")
STEP_FILES = [
    "10_update_data",
    "20_analyze_signals",
    "30_optimize_weights",
    "40_validate_history",
    "50_generate_predictions",
    "60_analyze_performance",
]


def shiol(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "SHIOL_HOME": str(home),
        "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
        "SHIOL_HTTP_RETRIES": "0",
        **(env or {}),
    }
    full_env.pop("SHIOL_MUSL_API_KEY", None)
    return subprocess.run([SHIOL, *args], env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    home = tmp_path_factory.mktemp("home")
    done = shiol(home, "run", "pipeline", "--offline", "--json")  # online, no source answering would fail it
    assert done.returncode == 0, done.stdout + done.stderr
    return home, json.loads(done.stdout)


@pytest.mark.slow
def test_pipeline_archives_every_step_and_predicts_the_next_drawing(pipeline_run):
    home, outcome = pipeline_run
    manifest = outcome["manifest"]
    directory = Path(outcome["directory"])
    assert directory.parent.parent == home / "runs" / "pipeline"
    assert manifest["status"] == "success" and manifest["trigger"] == "manual"
    assert manifest["target_draw_date"] == "2024-07-01" and manifest["history_end"] == "2024-06-29"
    assert manifest["input"]["draw_count"] == 1647 and len(manifest["input"]["draws_sha256"]) == 64
    assert [s["status"] for s in manifest["steps"]] == ["success"] * 6
    for stem in STEP_FILES:
        assert (directory / f"{stem}.ipynb").exists() and (directory / f"{stem}.html").exists()
    packages = manifest["environment"]["packages"]
    assert packages["papermill"][0].isdigit() and packages["duckdb"][0].isdigit()
    assert manifest["environment"]["python"].startswith("3.11")
    assert len(manifest["code"]["git_commit"]) == 40 and isinstance(manifest["code"]["git_dirty"], bool)
    assert set(manifest["outputs"]) >= {
        "predictions",
        "artifact:weights",
        "artifact:model",
        "artifact:backtest_tickets",
    }
    predict_step = manifest["steps"][4]
    assert predict_step["parameters"]["target_draw_date"] == "2024-07-01"
    command = predict_step["command"]
    assert f"{home / 'runs' / 'reruns' / outcome['run_id']}/$(date -u" in command
    assert f" && {Path(sys.executable).with_name('papermill')} " in command
    assert "50_generate_predictions.ipynb" in command
    assert json.loads((directory / "manifest.json").read_text()) == manifest


@pytest.mark.slow
def test_pipeline_stores_100_valid_distinct_predictions_for_2024_07_01(pipeline_run):
    home, outcome = pipeline_run
    with duckdb.connect(str(home / "var" / "shiol.snapshot.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "SELECT target_draw_date, rank, n1, n2, n3, n4, n5, pb FROM predictions WHERE run_id = ? ORDER BY rank",
            [outcome["run_id"]],
        ).fetchall()
        run = conn.execute(
            "SELECT status, trigger, target_draw_date FROM runs WHERE run_id = ?", [outcome["run_id"]]
        ).fetchone()
        steps = conn.execute(
            "SELECT step, status FROM run_steps WHERE run_id = ? ORDER BY position", [outcome["run_id"]]
        ).fetchall()
    assert len(rows) == 100 and {r[0] for r in rows} == {date(2024, 7, 1)}
    assert [r[1] for r in rows] == list(range(1, 101))
    assert len({r[2:] for r in rows}) == 100
    assert all(1 <= r[2] < r[3] < r[4] < r[5] < r[6] <= 69 and 1 <= r[7] <= 26 for r in rows)
    assert run == ("success", "manual", date(2024, 7, 1))
    assert [s[1] for s in steps] == ["success"] * 6


@pytest.mark.slow
def test_index_ledger_and_listing(pipeline_run):
    home, outcome = pipeline_run
    page = (home / "runs" / "index.html").read_text()
    assert outcome["run_id"] in page and "50_generate_predictions.html" in page and "2024-07-01" in page
    assert verify_ledger(home / "runs") == []
    listed = json.loads(shiol(home, "runs", "list", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(outcome["run_id"], "success")]
    shown = shiol(home, "runs", "show", outcome["run_id"])
    assert shown.returncode == 0 and "generate_predictions" in shown.stdout and "papermill" in shown.stdout
    verified = shiol(home, "runs", "verify")
    assert verified.returncode == 0 and "archive intact: 1 ledger entries, 1 runs" in verified.stdout


@pytest.mark.slow
def test_plain_papermill_cli_reproduces_the_predictions(pipeline_run, tmp_path):
    home, outcome = pipeline_run
    step = outcome["manifest"]["steps"][4]
    params = step["parameters"]
    args = [
        sys.executable,
        "-m",
        "papermill",
        str(REPO / "notebooks" / "50_generate_predictions.ipynb"),
        str(tmp_path / "out.ipynb"),
        "--cwd",
        str(REPO / "notebooks"),
    ]
    for name, value in params.items():
        args += ["-p", name, str(value)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    shown = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "**100 distinct tickets** for the drawing of **2024-07-01**" in shown
    hashes = json.loads(shiol(home, "runs", "show", outcome["run_id"], "--json").stdout)["outputs"]
    stored = prediction_table.output_hashes(open_store(home / "var" / "shiol.duckdb"), outcome["run_id"])
    assert stored["predictions"] == hashes["predictions"]


@pytest.mark.slow
def test_a_pasted_step_command_leaves_the_archived_runs_outputs_in_the_live_store(pipeline_run):
    """The command `shiol runs show` prints for step 5, pasted with `-p seed 1` as an analyst would: the new
    tickets go to a scratch copy of the store in runs/reruns/, the live store keeps the run's 100 tickets,
    and `shiol runs verify` stays clean (tests/archive/test_rerun_command.py checks the command line)."""
    home, outcome = pipeline_run
    run_id = outcome["run_id"]
    shown = shiol(home, "runs", "show", run_id)
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
    verified = shiol(home, "runs", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
def test_rerun_reports_identical_outputs(pipeline_run):
    home, outcome = pipeline_run
    done = shiol(home, "rerun", outcome["run_id"], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["identical"] and report["input_identical"] and report["mismatched"] == []
    assert report["outputs"]["predictions"]["original"] == report["outputs"]["predictions"]["rerun"]
    listed = json.loads(shiol(home, "runs", "list", "--json").stdout)
    assert [r["trigger"] for r in listed] == ["rerun", "manual"]
    assert listed[0]["parent_run_id"] == outcome["run_id"]
    diff = shiol(home, "runs", "diff", outcome["run_id"], report["run_id"], "--json")
    fields = {d["field"] for d in json.loads(diff.stdout)["differences"]}
    assert not any(f.startswith(("outputs.predictions", "parameters.", "input.")) for f in fields), fields


def _notebooks_with(tmp_path: Path, replace: dict[str, str]) -> Path:
    folder = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", folder)
    for name, fixture in replace.items():  # the fixture's behaviour, declaring the step's parameters too
        nb = nbformat.read(REPO / "tests" / "notebooks" / fixture, as_version=4)
        original = nbformat.read(folder / name, as_version=4)
        ours = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        theirs = next(c for c in original.cells if "parameters" in c.metadata.get("tags", []))
        ours.source = theirs.source + "\n" + ours.source
        nbformat.write(nb, folder / name)
    return folder


@pytest.mark.slow
def test_a_failed_step_stops_the_pipeline_and_is_archived(tmp_path):
    notebooks = _notebooks_with(tmp_path, {"20_analyze_signals.ipynb": "broken.ipynb"})
    done = shiol(
        tmp_path / "home", "run", "pipeline", "--offline", "--json", env={"SHIOL_NOTEBOOKS_DIR": str(notebooks)}
    )
    assert done.returncode == 6, done.stderr
    manifest = json.loads(done.stdout)["manifest"]
    assert [s["status"] for s in manifest["steps"]] == ["success", "failed", "skipped", "skipped", "skipped", "skipped"]
    failed = manifest["steps"][1]
    assert failed["error_class"] == "cell error" and "ZeroDivisionError" in failed["error"]
    directory = Path(json.loads(done.stdout)["directory"])
    assert (directory / "20_analyze_signals.html").exists() and not (directory / "30_optimize_weights.ipynb").exists()
    assert manifest["status"] == "failed" and "adaptive_analysis" in manifest["error"]
    assert verify_ledger(tmp_path / "home" / "runs") == []


@pytest.mark.slow
def test_the_whole_run_timeout_kills_and_archives(tmp_path):
    notebooks = _notebooks_with(tmp_path, {"10_update_data.ipynb": "sleeps_forever.ipynb"})
    done = shiol(
        tmp_path / "home",
        "run",
        "data_update",
        "--json",
        env={"SHIOL_NOTEBOOKS_DIR": str(notebooks), "SHIOL_RUN_TIMEOUT_S": "8"},
    )
    assert done.returncode == 6
    manifest = json.loads(done.stdout)["manifest"]
    assert manifest["status"] == "timeout" and manifest["steps"][0]["error_class"] == "timeout"
    assert "8 s wall-clock limit" in manifest["steps"][0]["error"]
    assert (Path(json.loads(done.stdout)["directory"]) / "10_update_data.html").exists()


def test_bad_requests_are_clear_errors(tmp_path):
    home = tmp_path / "home"
    unknown = shiol(home, "run", "step", "nonsense")
    assert unknown.returncode == 2 and "unknown step 'nonsense'" in unknown.stderr
    param = shiol(home, "run", "step", "generate_predictions", "-p", "n_tickets", "5")
    assert param.returncode == 2 and "unknown parameter 'n_tickets'" in param.stderr
    typed = shiol(home, "run", "step", "generate_predictions", "-p", "n_predictions", "many")
    assert typed.returncode == 2 and "wants int, got str 'many'" in typed.stderr
    assert not (home / "var").exists()  # refused before a store was created
    assert shiol(home, "init").returncode == 0  # without a store, `runs show` would refuse first (exit 5)
    for bad, code in (("../../etc", 2), ("20261128T000000Z-abcdef", 7)):  # malformed: usage; absent: archive
        shown = shiol(home, "runs", "show", bad)
        assert shown.returncode == code and bad in shown.stderr
    assert not (home / "runs" / "pipeline").exists()


def test_unwritable_runs_dir_refuses_before_recording_a_run(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    done = shiol(tmp_path / "home", "run", "data_update", env={"SHIOL_RUNS_DIR": str(blocker / "runs")})
    assert done.returncode == 7 and "not writable" in done.stderr
    assert not (tmp_path / "home" / "var").exists()  # no store touched, no run recorded


@pytest.mark.slow
def test_sigterm_interrupts_the_run_kills_the_kernel_and_records_it(tmp_path):
    import signal
    import time

    import psutil

    notebooks = _notebooks_with(tmp_path, {"10_update_data.ipynb": "sleeps_forever.ipynb"})
    pid_file = notebooks / "child.pid"
    env = {**os.environ, "SHIOL_HOME": str(tmp_path / "home"), "SHIOL_NOTEBOOKS_DIR": str(notebooks)}
    proc = subprocess.Popen(
        [SHIOL, "run", "data_update", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not pid_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, err
    manifest = json.loads(out)["manifest"]
    assert manifest["status"] == "interrupted" and manifest["steps"][0]["status"] == "interrupted"
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert verify_ledger(tmp_path / "home" / "runs") == []
