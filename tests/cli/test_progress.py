"""Progress while a job runs: one line per step start and end off a terminal; step lines and papermill's
per-cell bar on one (a pseudo-terminal here)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = [
    ("update_data", "10_update_data"),
    ("adaptive_analysis", "20_analyze_signals"),
    ("weight_optimization", "30_optimize_weights"),
    ("historical_validation", "40_validate_history"),
    ("generate_predictions", "50_generate_predictions"),
    ("performance_analysis", "60_analyze_performance"),
]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update({"SHIOL_HOME": str(home), "PYTHONPATH": str(REPO), **extra})
    return env


def shiol(*args: str) -> list[str]:
    return [sys.executable, "-m", "shiol_lib.cli", *args]


@pytest.fixture
def quick_notebooks(tmp_path: Path) -> Path:
    """The six pipeline notebooks with their parameters cells only and one cell that prints."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for _, stem in STEPS:
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        nb.cells = [parameters, nbformat.v4.new_code_cell('print("done")')]
        nbformat.write(nb, str(folder / f"{stem}.ipynb"))
    return folder


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = subprocess.run(shiol("update-data", "--offline"), env=env_for(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("created the store")]
    assert len(lines) == 2 and lines[0] == "update-data started", lines
    assert re.fullmatch(r"update-data ended: success in \d+\.\d s", lines[1]), lines
    return home


@pytest.mark.slow
def test_off_a_terminal_each_step_gets_one_start_and_one_end_line(home: Path, quick_notebooks: Path) -> None:
    done = subprocess.run(
        shiol("run", "pipeline", "--offline", "--json"),
        capture_output=True,
        text=True,
        env=env_for(home, SHIOL_NOTEBOOKS_DIR=str(quick_notebooks)),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    run_id = re.search(r'"run_id": "([^"]+)"', done.stdout).group(1)
    lines = done.stderr.splitlines()
    expected = []
    for position, (name, _) in enumerate(STEPS, start=1):
        expected.append(f"run {run_id} job pipeline step {position}/6 {name} started")
        expected.append(f"run {run_id} job pipeline step {position}/6 {name} ended: success in")
    assert len(lines) == 12, lines  # nothing else: no progress bar, no papermill log
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)
    again = subprocess.run(
        shiol("rerun", run_id),
        capture_output=True,
        text=True,
        env=env_for(home, SHIOL_NOTEBOOKS_DIR=str(quick_notebooks)),
        timeout=600,
    )
    assert again.returncode in (0, 8), again.stderr  # 8: these notebooks store no outputs to compare
    rerun_id = re.search(r"^rerun (\S+) of", again.stdout).group(1)
    lines = again.stderr.splitlines()
    assert len(lines) == 12, lines
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start.replace(run_id, rerun_id)), (line, start)


def read_pty(argv: list[str], env: dict[str, str], timeout_s: float = 600) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal; its exit code and all it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal has a size
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.slow
def test_on_a_terminal_steps_and_papermill_progress_bars_show(home: Path, quick_notebooks: Path) -> None:
    code, text = read_pty(
        shiol("run", "pipeline", "--offline"), env_for(home, SHIOL_NOTEBOOKS_DIR=str(quick_notebooks))
    )
    assert code == 0, text
    for position, (name, _) in enumerate(STEPS, start=1):
        assert f"[{position}/6] {name} (pipeline, run " in text
        assert re.search(rf"\[{position}/6\] {name}: success in \d+\.\d s", text), text
    assert text.count("Executing: 100%") >= 6, text  # papermill's per-cell bar, once per step
    assert "run " in text and "(pipeline): success" in text  # the summary still follows
