"""Step kernels: each step a fresh kernel with exactly its environment and working directory, the next
one started ahead and used only when it fits, and no kernel left behind on any path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from shiol_lib.execution.kernels import KernelPool
from shiol_lib.execution.runner import execute

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def environment(marker: str) -> dict[str, str]:
    return {**os.environ, "SHIOL_TEST_MARKER": marker}


def run(tmp_path: Path, name: str, pool: KernelPool, env: dict[str, str], *, ahead: bool) -> dict:
    out = tmp_path / f"{name}.json"
    result = execute(
        NOTEBOOKS / "writes_environment.ipynb",
        tmp_path / f"{name}.ipynb",
        {"out_path": str(out)},
        cwd=tmp_path,
        env=env,
        kernels=pool,
        ahead=ahead,
    )
    assert result.status == "success", result.error
    return json.loads(out.read_text())


@pytest.mark.slow
def test_each_step_gets_a_fresh_kernel_with_its_environment_and_the_next_one_is_started_ahead(tmp_path, new_children):
    env = environment("first")
    with KernelPool() as pool:
        first = run(tmp_path, "first", pool, env, ahead=True)
        spare = pool._spare
        assert spare is not None and spare.alive() and spare.pid != first["pid"]
        second = run(tmp_path, "second", pool, env, ahead=False)
        assert second["pid"] == spare.pid  # the kernel started while the first step ran
        assert pool._spare is None
        # the first report was rendered while the second step ran; the second step waited for it
        assert "<html" in (tmp_path / "first.html").read_text() and (tmp_path / "second.html").is_file()
    for seen in (first, second):
        assert seen["cwd"] == str(tmp_path) and seen["value"] == "first"
        assert seen["preloaded"]  # the library was imported before the first cell
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    assert new_children() == []


@pytest.mark.slow
def test_a_spare_kernel_that_died_or_has_another_environment_is_discarded(tmp_path, new_children):
    with KernelPool() as pool:
        run(tmp_path, "first", pool, environment("first"), ahead=True)
        stale = pool._spare
        other = run(tmp_path, "other", pool, environment("other"), ahead=True)  # the spare's env differs
        assert other["value"] == "other" and other["pid"] != stale.pid and not stale.alive()
        dead = pool._spare
        os.kill(dead.pid, signal.SIGKILL)
        dead.manager.provisioner.process.wait(timeout=30)
        again = run(tmp_path, "again", pool, environment("other"), ahead=True)
        assert again["pid"] != dead.pid and again["value"] == "other"
        assert pool._spare is not None and pool._spare.alive()
    assert new_children() == []  # leaving the pool stops the spare and its watchdog


_INTERRUPTED_STEP = """
import sys
from shiol_lib.execution.kernels import KernelPool
from shiol_lib.execution.runner import execute
with KernelPool() as pool:
    execute(sys.argv[1], sys.argv[2], {"pid_file": sys.argv[3]}, kernels=pool, ahead=True, timeout_s=600)
"""


def _sleeping_cell_runs(out: Path) -> bool:
    """Whether papermill's partial notebook shows the sleeping cell started (Ctrl-C must land in it)."""
    try:
        cells = nbformat.read(out.with_name(out.name + ".partial"), as_version=4).cells
    except (OSError, ValueError, AttributeError):  # not written yet, or caught mid-write
        return False
    sleeping = [c for c in cells if "time.sleep(seconds)" in c.source]
    return bool(sleeping) and sleeping[0].metadata.get("papermill", {}).get("status") == "running"


@pytest.mark.slow
def test_an_interrupted_step_leaves_no_kernel_and_a_rendered_partial_notebook(tmp_path):
    # A real process gets a real Ctrl-C (SIGINT) once the cell has started its child. (Raising
    # KeyboardInterrupt from a signal handler inside pytest's own process can land inside ast.parse,
    # which leaves CPython 3.11's AST state broken for the rest of the session.)
    out, pid_file = tmp_path / "sleeps.ipynb", tmp_path / "child.pid"
    step = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_STEP, str(NOTEBOOKS / "sleeps_forever.ipynb"), str(out), str(pid_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (pid_file.exists() and pid_file.read_text().strip() and _sleeping_cell_runs(out)):
        assert step.poll() is None, step.communicate()[0]
        assert time.monotonic() < deadline, "the cell never started its child and the sleep"
        time.sleep(0.1)
    tree = psutil.Process(step.pid).children(recursive=True)  # both kernels, their watchdogs, the cell's child
    assert len(tree) >= 3, tree
    step.send_signal(signal.SIGINT)
    output = step.communicate(timeout=120)[0]
    assert step.returncode != 0 and "KeyboardInterrupt" in output, output
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    assert int(pid_file.read_text()) in {p.pid for p in tree}
    assert out.exists() and out.with_suffix(".html").exists()
    cells = nbformat.read(out, as_version=4).cells
    sleeping = next(c for c in cells if "time.sleep(seconds)" in c.source)
    assert sleeping.metadata["papermill"]["status"] == "running"  # stopped, not completed
    assert sleeping.metadata["papermill"]["end_time"] is None


def test_no_head_start_for_a_missing_folder_and_the_job_says_which_notebook_is_missing(tmp_path, new_children):
    with KernelPool() as pool:
        pool.prepare(dict(os.environ), tmp_path / "missing")  # no kernel, no error: the job's checks explain
        assert pool._spare is None
    assert new_children() == []


def test_deferred_tasks_run_in_order_and_settling_raises_the_first_failure(caplog):
    done: list[str] = []

    def fail(message: str) -> None:
        done.append(message)
        raise RuntimeError(message)

    with KernelPool() as pool:
        pool.defer(lambda: done.append("report 1"))
        pool.defer(lambda: fail("report 2 broke"))
        pool.defer(lambda: fail("report 3 broke"))
        with pytest.raises(RuntimeError, match="report 2 broke"):
            pool.settle()
        assert done == ["report 1", "report 2 broke", "report 3 broke"]  # the later tasks still ran
        pool.settle()  # nothing left
        pool.defer(lambda: fail("report 4 broke"))
    assert "a deferred task failed" in caplog.text and "report 4 broke" in caplog.text  # closing logs, never raises
