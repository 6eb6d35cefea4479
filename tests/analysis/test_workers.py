"""The helper process: calls run in a fresh interpreter, errors come back as raised, printing is harmless,
and a script without a main guard can use it (multiprocessing's spawn would re-run the script)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from shiol_lib.analysis.backtest import ticket_seed
from shiol_lib.analysis.research.workers import WorkerError, WorkerProcess
from shiol_lib.domain.game import matrix_for
from shiol_lib.errors import UnknownMatrixError

REPO = Path(__file__).resolve().parents[2]


def test_calls_run_in_another_process_and_errors_come_back() -> None:
    with WorkerProcess() as worker:
        pid = worker.call(os.getpid)
        assert pid != os.getpid()
        assert worker.call(print, "printed in the helper") is None  # to its stderr, never into the answers
        assert worker.call(ticket_seed, 7, 738000) == ticket_seed(7, 738000)
        with pytest.raises(UnknownMatrixError):
            worker.call(matrix_for, date(1990, 1, 3))
        assert worker.call(os.getpid) == pid  # the same process goes on


def test_a_helper_that_died_is_an_error_that_says_so() -> None:
    worker = WorkerProcess()
    worker._proc.kill()
    worker._proc.wait()
    with pytest.raises(WorkerError, match="ended before it answered"):
        worker.call(os.getpid)
    worker.close()


def test_a_script_without_a_main_guard_replays_on_two_processes(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
        + "from dataclasses import replace\nfrom analysis_support import FAST_BACKTEST, fair_frame\n"
        "from shiol_lib.analysis.backtest import run_backtest\n"
        "config = replace(FAST_BACKTEST, test_draws=8, refit_every=3, refit_anchor='era')\n"
        "result = run_backtest(fair_frame(90, seed=3), config=config, seed=1, known={}, workers=2)\n"
        "print('refits', len(result.refits), 'tickets', len(result.tickets))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "refits 3 tickets 800"
