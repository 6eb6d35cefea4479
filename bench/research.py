"""Research sweeps: a backtest slice in-process vs a two-worker LocalCluster, and growth with drawings x seeds.

Run: ``PYTHONPATH=. python bench/research.py [--drawings 12] [--config fast]``. Prints one line per
measurement (seconds, tasks, tasks by worker) and the ratio; the numbers go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import shiol_lib
from shiol_lib.analysis.research import tasks as research
from shiol_lib.analysis.research.engine import run_tasks
from shiol_lib.domain.draws import draws_to_frame
from shiol_lib.ingest.records import parse_ny_csv


def bundled_history():  # noqa: ANN201 - a benchmark helper
    text = (Path(shiol_lib.__file__).parent / "data" / "powerball_draws_ny.csv").read_text()
    return draws_to_frame(parse_ny_csv(text, source="bundled", now=datetime.now(UTC)).draws)


def sweep(frame, drawings: int, seeds: int, config: str, cluster: str) -> tuple[float, int, dict[str, int]]:  # noqa: ANN001
    days = [d.date() for d in frame["draw_date"]]
    keys = research.backtest_keys(frame, days[-drawings], days[-1], list(range(seeds)), [config])
    started = time.perf_counter()
    run = run_tasks(
        research.backtest_task, keys, {"draws": frame, "configs": (research.preset(config),)}, cluster=cluster
    )
    return time.perf_counter() - started, len(keys), run.tasks_by_worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drawings", type=int, default=12)
    parser.add_argument("--config", default="fast")
    args = parser.parse_args()
    frame = bundled_history()
    inproc, n, _ = sweep(frame, args.drawings, 1, args.config, "none")
    local, _, workers = sweep(frame, args.drawings, 1, args.config, "local")
    print(
        f"slice of {n} tasks ({args.config}): in-process {inproc:.1f} s, LocalCluster(2x1) {local:.1f} s "
        f"(incl. start-up) {workers}; ratio in-process/local {inproc / local:.2f}"
    )
    for drawings, seeds in ((args.drawings // 2, 1), (args.drawings, 1), (args.drawings, 2)):
        took, tasks, _ = sweep(frame, drawings, seeds, args.config, "none")
        print(
            f"in-process {drawings} drawings x {seeds} seed(s) = {tasks} tasks: {took:.1f} s "
            f"({took / tasks:.2f} s per task)"
        )


if __name__ == "__main__":
    main()
