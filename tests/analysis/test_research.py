"""Research sweeps: the same figures on every engine, a killed worker changes nothing, the power study."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from analysis_support import real_frame
from scipy import stats

from shiol_lib.analysis.research import tasks as research
from shiol_lib.analysis.research.engine import IN_PROCESS, run_tasks, task_seed
from shiol_lib.domain.spans import RESEARCH_HISTORY_NEEDED
from shiol_lib.errors import ClusterError, InsufficientHistoryError

DASK = str(Path(sys.executable).parent / "dask")
NAMES = ["untuned"]  # the cheapest configuration: same code paths, no weight tuning


def _keys() -> list[research.BacktestKey]:
    return research.backtest_keys(real_frame(), date(2024, 1, 1), date(2024, 1, 31), [1, 2], NAMES)


def _shared() -> dict[str, object]:
    return {"draws": real_frame(), "configs": tuple(research.preset(n) for n in NAMES)}


def _evaluations(cluster: str, **kwargs: object) -> tuple[pd.DataFrame, dict[str, int]]:
    run = run_tasks(research.backtest_task, _keys(), _shared(), cluster=cluster, **kwargs)
    return pd.concat(run.results, ignore_index=True), run.tasks_by_worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaskProcesses:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (no nanny: a killed worker stays dead)."""

    def __init__(self, workers: int = 2) -> None:
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        common = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                self.address.rsplit(":", 1)[1],
                "--dashboard-address",
                ":0",
            ],
            **common,
        )
        self.workers = [
            subprocess.Popen(
                [
                    DASK,
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                ],
                **common,
            )
            for _ in range(workers)
        ]
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(self.address, timeout=5) as client:
                    client.wait_for_workers(workers, timeout=60)
                    self.worker_pids = client.run(os.getpid)  # address -> pid
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def processes() -> Iterator[DaskProcesses]:
    cluster = DaskProcesses()
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def in_process() -> tuple[pd.DataFrame, dict[str, int]]:
    return _evaluations("none")


def test_task_seeds_come_from_the_key_alone() -> None:
    assert task_seed(1, 738000, 0) == task_seed(1, 738000, 0)
    assert len({task_seed(s, o, c) for s in (1, 2) for o in (738000, 738001) for c in (0, 1)}) == 8


def test_keys_refuse_empty_era_crossing_or_too_early_spans() -> None:
    with pytest.raises(ValueError, match="nothing to backtest: no stored drawing from 2030-01-01 to 2030-02-01"):
        research.backtest_keys(real_frame(), date(2030, 1, 1), date(2030, 2, 1), [1], NAMES)
    refusal = (
        "no drawing from 2015-10-07 to 2015-12-01 has the 56 earlier drawings .* the first stored drawing "
        "with enough is 2016-04-20: move the span later"
    )
    with pytest.raises(InsufficientHistoryError, match=refusal) as refused:
        research.backtest_keys(real_frame(), date(2015, 10, 7), date(2015, 12, 1), [1], ["fast"])
    assert refused.value.needed == 56 and refused.value.available < 56
    with pytest.raises(ValueError, match="crosses a game-matrix change"):
        research.backtest_keys(real_frame(), date(2015, 1, 1), date(2016, 1, 1), [1], NAMES)


def test_a_span_starts_at_its_first_drawing_with_enough_era_history() -> None:
    """2016-01-01 .. 2016-06-30 on `fast` (56 earlier drawings needed): the first 31 targets are skipped."""
    days = [d.date() for d in real_frame()["draw_date"]]
    era = [d for d in days if d >= date(2015, 10, 7)]
    span = research.backtest_span(real_frame(), date(2016, 1, 1), date(2016, 6, 30), ["fast"])
    asked = [d for d in days if date(2016, 1, 1) <= d <= date(2016, 6, 30)]
    assert span.first_target == era[56] and span.targets[-1] == asked[-1]
    assert span.skipped == tuple(asked[:31]) and span.targets == tuple(asked[31:])
    summary = span.skipped_summary()
    assert summary["drawings"] == 31 and summary["from"] == "2016-01-02" and summary["to"] == era[55].isoformat()
    assert summary["needed"] == 56 and summary["available"] == 25
    assert "fewer than 56 earlier drawings of the 2015-69/26 era" in summary["reason"]
    keys = research.backtest_keys(real_frame(), date(2016, 1, 1), date(2016, 6, 30), [1, 2], ["fast"])
    assert len(keys) == 2 * len(span.targets) and min(k.ordinal for k in keys) == span.first_target.toordinal()
    later = research.backtest_span(real_frame(), date(2024, 1, 1), date(2024, 1, 31), ["fast"])
    assert later.skipped_summary()["drawings"] == 0 and later.first_target == date(2024, 1, 1)


def test_the_cli_table_of_history_needs_matches_the_presets() -> None:
    assert {name: research._warmup(research.preset(name)) for name in research.PRESETS} == RESEARCH_HISTORY_NEEDED


def test_in_process_sweep_counts_every_task(in_process: tuple[pd.DataFrame, dict[str, int]]) -> None:
    evaluations, by_worker = in_process
    assert by_worker == {IN_PROCESS: len(_keys())}
    assert len(evaluations) == 100 * len(_keys())
    figures = research.summarize_backtest(evaluations, NAMES)
    assert figures.loc[0, "drawings"] == len(_keys()) // 2 and figures.loc[0, "seeds"] == 2
    by_year = research.hit_rates_by_year(evaluations, NAMES)
    assert by_year["prize_expected"].iloc[0] == pytest.approx(1 / 24.87, rel=1e-3)


def test_unreachable_address_is_a_clear_error() -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterError, match=address):
        run_tasks(research.backtest_task, _keys()[:1], _shared(), cluster=address)


@pytest.mark.slow
def test_local_cluster_and_separate_processes_give_identical_results(
    in_process: tuple[pd.DataFrame, dict[str, int]],
    processes: DaskProcesses,
    capfd: pytest.CaptureFixture[str],
) -> None:
    expected, _ = in_process
    local, local_workers = _evaluations("local")
    pd.testing.assert_frame_equal(local, expected, check_exact=True)
    noise = [line for line in capfd.readouterr().err.splitlines() if "distributed." in line and "INFO" in line]
    assert noise == []  # a report would carry every scheduler and nanny event otherwise
    assert len(local_workers) == 2 and sum(local_workers.values()) == len(_keys())
    remote, remote_workers = _evaluations(processes.address)
    pd.testing.assert_frame_equal(remote, expected, check_exact=True)
    assert set(remote_workers) == set(processes.worker_pids), remote_workers  # both workers got tasks
    assert research.summarize_backtest(remote, NAMES).equals(research.summarize_backtest(expected, NAMES))


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_changes_nothing(
    in_process: tuple[pd.DataFrame, dict[str, int]],
    processes: DaskProcesses,
) -> None:
    expected, _ = in_process
    victim = next(iter(processes.worker_pids.values()))
    killed: list[int] = []

    def kill_once(done: int, total: int) -> None:
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    result, by_worker = _evaluations(processes.address, progress=kill_once)
    assert killed and killed[0] < len(_keys())
    pd.testing.assert_frame_equal(result, expected, check_exact=True)
    assert sum(by_worker.values()) == len(_keys())


@pytest.mark.slow
def test_power_study_finds_the_planted_bias_and_holds_alpha_on_fair_histories() -> None:
    """12 fair and 12 planted (strength 3, as in test_synthetic) histories, 20 tested drawings each."""
    histories, alpha = 12, 0.05
    shared = {"strengths": (1.0, 3.0), "drawings": (20,), "config": research.preset("fast"), "seed": 7, "alpha": alpha}
    run = run_tasks(research.power_task, research.power_keys(2, 1, histories), shared, cluster="local")
    cells = research.summarize_power(run.results).set_index("strength")
    fair, planted = cells.loc[1.0], cells.loc[3.0]
    print(cells.to_string())  # the figures, for the report
    # Binomial(12, 0.05): P(X >= 6) = 0.0002, so a valid test passes this bound with very high probability.
    assert fair["detected"] <= 5, cells
    assert stats.binom.sf(fair["detected"] - 1, histories, alpha) > 1e-4
    assert planted["detection_rate"] >= 0.75, cells
