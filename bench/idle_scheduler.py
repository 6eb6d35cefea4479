"""Benchmark: CPU the scheduler uses while it holds its three jobs idle, for two scheduler cycles.

Runs :func:`processes.idle_scheduler` (the real app, health API included, on a seeded store whose jobs
have nothing due) for two values of SHIOL_SCHEDULER_CYCLE_S and prints percent of one core, RSS, and
the ratio between the two.

    .venv/bin/python bench/idle_scheduler.py [--seconds 60]
"""

from __future__ import annotations

import argparse

import processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    results = {cycle: processes.idle_scheduler(args.seconds, cycle) for cycle in ("1.0", "0.1")}
    for cycle, row in results.items():
        print(
            f"cycle {cycle:>4} s: {row['cpu_percent']:.2f} % of one core idle, RSS {row['rss_mb']:.0f} MB "
            f"(3 jobs, {args.seconds:.0f} s window)"
        )
    ratio = results["0.1"]["cpu_percent"] / max(results["1.0"]["cpu_percent"], 1e-9)
    print(f"ratio 0.1 s / 1.0 s: {ratio:.1f}x")


if __name__ == "__main__":
    main()
