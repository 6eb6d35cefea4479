"""Step kernels: each step a fresh kernel with exactly its environment and working directory, the next
one started ahead and used only when it fits, and no kernel left behind on any path."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from shiol_lib.pipeline.kernels import KernelPool
from shiol_lib.pipeline.runner import execute_notebook

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


def environment(marker: str) -> dict[str, str]:
    return {**os.environ, "SHIOL_TEST_MARKER": marker}


def run(tmp_path: Path, name: str, pool: KernelPool, env: dict[str, str], *, ahead: bool) -> dict:
    out = tmp_path / f"{name}.json"
    result = execute_notebook(NOTEBOOKS / "writes_environment.ipynb", tmp_path / f"{name}.ipynb",
                              {"out_path": str(out)}, cwd=tmp_path, env=env, kernels=pool, ahead=ahead)
    assert result.status == "success", result.error
    return json.loads(out.read_text())


@pytest.mark.slow
def test_each_step_gets_a_fresh_kernel_with_its_environment_and_the_next_one_is_started_ahead(tmp_path):
    env = environment("first")
    with KernelPool() as pool:
        first = run(tmp_path, "first", pool, env, ahead=True)
        spare = pool._spare
        assert spare is not None and spare.alive() and spare.pid != first["pid"]
        second = run(tmp_path, "second", pool, env, ahead=False)
        assert second["pid"] == spare.pid  # the kernel started while the first step ran
        assert pool._spare is None
    for seen in (first, second):
        assert seen["cwd"] == str(tmp_path) and seen["value"] == "first"
        assert seen["preloaded"]  # the library was imported before the first cell
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    assert children() == []


@pytest.mark.slow
def test_a_spare_kernel_that_died_or_has_another_environment_is_discarded(tmp_path):
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
    assert children() == []  # leaving the pool stops the spare and its watchdog


@pytest.mark.slow
def test_an_interrupted_step_leaves_no_kernel_and_a_rendered_partial_notebook(tmp_path):
    out = tmp_path / "sleeps.ipynb"
    pid_file = tmp_path / "child.pid"

    def interrupt_once_started(signum, frame):  # Ctrl-C as soon as the cell has started its child
        if pid_file.exists():
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt_once_started)
    try:
        with KernelPool() as pool:
            signal.setitimer(signal.ITIMER_REAL, 0.5, 0.5)
            with pytest.raises(KeyboardInterrupt):
                execute_notebook(NOTEBOOKS / "sleeps_forever.ipynb", out, {"pid_file": str(pid_file)},
                                 kernels=pool, ahead=True, timeout_s=600)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert out.exists() and out.with_suffix(".html").exists()
    assert children() == []


def test_no_head_start_for_a_missing_folder_and_the_job_says_which_notebook_is_missing(tmp_path):
    with KernelPool() as pool:
        pool.prepare(dict(os.environ), tmp_path / "missing")  # no kernel, no error: the job's checks explain
        assert pool._spare is None
    assert children() == []
