"""Benchmarks of the evaluation job and of the six pipeline steps, in one process, on a temp store.

* ``evaluation``: a store with the bundled draws and ``n`` stored tickets (runs of 100 on random
  current-era drawings, none evaluated yet). ``full_s``: the evaluation job (``steps.evaluate_predictions``)
  evaluates all of them; ``incremental_s``: 300 new tickets (3 runs) are added and the job runs again;
  ``sql_reference_s``: a plain DuckDB join of the same ``n`` tickets with their drawings (white and Powerball
  matches, fetched as a DataFrame), the floor a store-side evaluation can aim at; ``write_snapshot_s``:
  one empty write transaction on that store (every committed write republishes the reader snapshot).
* ``greedy``: one evaluation of the weight objective (20 tuning pools x 100 greedy picks) for step 3's
  tuning set on the bundled data.
* ``pipeline`` (``pipeline_bench.py``): the six step calls as the notebooks make them, then the evaluation
  job, on the bundled data in a temp store, cold (the previous drawing's run on a new store) and warm (the
  next run); wall and CPU seconds per step and step 4's cold / warm ratio. In the same run, the notebook
  pipeline with the same settings, cold and warm (``processes.notebook_pipeline``): ``notebook_s``,
  ``ratio`` (notebook / in process), per step its fixed cost and its kernel's peak RSS, the tree's peak RSS
  and PSS, the largest kernel's PSS, and the run's ``timeline`` (per step: gap, time to its first cell, cells).
* ``snapshot``: the reader snapshot's cost (one empty write transaction) against the store's size, from the
  evaluation stores.
* ``scheduler``: the idle scheduler's CPU % of one core, RSS, USS and module count (``processes``).
* ``archive`` (``archive_bench.py``): an archive of 100, 1,000 and 3,000 runs (two years of operation)
  written through the real run lifecycle, built once into ``--archive-cache`` and grown; per size
  ``shiol runs verify`` (full and ``--since-last``), the dashboard at a run close and its first page's
  size, ``shiol runs list`` (and ``--json``), one planner cycle, the health report, a snapshot publish,
  the store's and archive's size, and at 3,000 runs the archive pruned to 90 days.
* ``cli``: start-up latency of ``shiol --help``, ``status`` and ``schedule plan --json``; ``update``:
  ``shiol update-data --offline`` on an empty home (``processes``).

Nothing here is asserted; the figures go to docs/BENCHMARKS.md. Run from the repository root:

    PYTHONPATH=. .venv/bin/python bench/run.py [--quick] [--json] [--repeat N] [--parts pipeline scheduler ...]

``--quick`` stops the evaluation sizes at 1e5, runs the pipeline with a short validation (13 drawings,
5 tuning drawings), watches the idle scheduler 20 s instead of 60 and starts each command 3 times instead
of 5: a few minutes. Timings are wall-clock seconds, the best of ``--repeat`` runs where a
measurement can be repeated (the pipeline runs once). The pipeline runs first, before the large stores.
The script calls only functions that earlier versions have too: with ``PYTHONPATH`` at an export of an
older commit it measures that commit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import archive_bench
import numpy as np
import pandas as pd
import pipeline_bench
import processes

from shiol_lib import steps
from shiol_lib.domain.draw_calendar import NEW_YORK, draw_after
from shiol_lib.domain.game import CURRENT_MATRIX
from shiol_lib.store import Store
from shiol_lib.store import predictions as prediction_table

SEED = 20240701
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
NEW_TICKETS = 300
PARTS = ("pipeline", "scheduler", "cli", "update", "greedy", "slots", "evaluation", "archive")
ARCHIVE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shiol-bench" / "archive-v1"
REFERENCE_SQL = """
SELECT p.run_id, p.rank, p.target_draw_date,
       (p.n1 IN (d.n1, d.n2, d.n3, d.n4, d.n5))::INTEGER + (p.n2 IN (d.n1, d.n2, d.n3, d.n4, d.n5))::INTEGER
       + (p.n3 IN (d.n1, d.n2, d.n3, d.n4, d.n5))::INTEGER + (p.n4 IN (d.n1, d.n2, d.n3, d.n4, d.n5))::INTEGER
       + (p.n5 IN (d.n1, d.n2, d.n3, d.n4, d.n5))::INTEGER AS white_matches,
       p.pb = d.pb AS pb_match
FROM predictions p JOIN draws d ON d.draw_date = p.target_draw_date
"""


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _best(call: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> float:
    """The best wall time of ``repeat`` calls (``before`` runs untimed ahead of each)."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        times.append(_timed(call))
    return min(times)


def _random_tickets(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` valid tickets of the current matrix: five distinct sorted white balls and a Powerball."""
    blocks = []
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        keys = rng.random((size, CURRENT_MATRIX.white_max))
        blocks.append(np.sort(np.argpartition(keys, 4, axis=1)[:, :5] + 1, axis=1))
    frame = pd.DataFrame(np.vstack(blocks), columns=["n1", "n2", "n3", "n4", "n5"])
    frame["pb"] = rng.integers(1, CURRENT_MATRIX.pb_max + 1, n)
    frame["score"] = rng.random(n)
    return frame


def _seed_tickets(store: Store, n: int, rng: np.random.Generator) -> None:
    """``n`` stored tickets in runs of 100 on random current-era drawings, written in one transaction."""
    draws = store.read_draws()
    days = draws.loc[draws["draw_date"] >= pd.Timestamp(CURRENT_MATRIX.first_date), "draw_date"].to_numpy()
    runs = n // 100
    frame = _random_tickets(runs * 100, rng)
    frame.insert(0, "rank", np.tile(np.arange(1, 101), runs))
    frame.insert(0, "target_draw_date", np.repeat(rng.choice(days, runs), 100))
    frame.insert(0, "run_id", np.repeat([f"bench-{i:06d}" for i in range(runs)], 100))
    frame["created_at"] = datetime.now(UTC)
    with store.transaction() as conn:
        conn.register("bench_tickets", frame)
        conn.execute(
            "INSERT INTO predictions SELECT run_id, target_draw_date, rank, n1, n2, n3, n4, n5, pb, score, "
            "created_at FROM bench_tickets"
        )
        conn.unregister("bench_tickets")


def _clear_evaluations(store: Store) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM evaluations")


def _reference_join(store: Store) -> int:
    with store.connect() as conn:
        return len(conn.execute(REFERENCE_SQL).df())


def _add_new_runs(store: Store, rng: np.random.Generator, tag: int) -> None:
    draws = store.read_draws()
    for r in range(NEW_TICKETS // 100):
        tickets = _random_tickets(100, rng)
        tickets.insert(0, "rank", np.arange(1, 101))
        day = draws["draw_date"].iloc[-1 - r].date()
        prediction_table.replace_predictions(store, f"new-{tag}-{r}", day, tickets)


def bench_evaluation(n: int, repeat: int) -> dict[str, float]:
    """Full and incremental evaluation of ``n`` stored tickets, beside the plain join (see the module doc)."""
    rng = np.random.default_rng(n)
    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "bench.duckdb")
        steps.update_data(db_path, offline=True, run_id="bench")
        store = steps.open_step_store(db_path)
        _seed_tickets(store, n, rng)
        rows = _reference_join(store)
        if rows != n:
            raise RuntimeError(f"the reference join found {rows} rows, {n} expected")
        reference = _best(lambda: _reference_join(store), repeat)
        full = _best(lambda: steps.evaluate_predictions(db_path), repeat, before=lambda: _clear_evaluations(store))
        tags = iter(range(repeat))
        incremental = _best(
            lambda: steps.evaluate_predictions(db_path), repeat, before=lambda: _add_new_runs(store, rng, next(tags))
        )
        snapshot = _best(lambda: _empty_write(store), repeat)
        store_mb = os.path.getsize(db_path) / 2**20
    return {
        "full_s": full,
        "incremental_s": incremental,
        "sql_reference_s": reference,
        "write_snapshot_s": snapshot,
        "store_mb": store_mb,
    }


def _empty_write(store: Store) -> None:
    with store.transaction():
        pass


def bench_greedy(repeat: int) -> dict[str, float]:
    """One evaluation of the weight objective on step 3's tuning set (bundled data, default settings)."""
    from shiol_lib.analysis.scoring import Weights
    from shiol_lib.analysis.weights import build_tuning_set, weight_objective

    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "bench.duckdb")
        steps.update_data(db_path, offline=True, run_id="bench")
        frame = steps.open_step_store(db_path).read_draws()
    tuning = build_tuning_set(frame, draw_after(frame["draw_date"].iloc[-1].date()), seed=SEED)
    weights = Weights()
    weight_objective(weights, tuning)  # first use builds each pool's index
    return {"objective_eval_s": _best(lambda: weight_objective(weights, tuning), repeat), "pools": len(tuning.pools)}


def bench_slots(repeat: int) -> dict[str, float]:
    """Three weeks of the evaluation job's slots (63, across the spring-forward change), best of ``repeat``.

    Cold: the per-day cache emptied first; cached: computed again at once.
    """
    from shiol_lib.domain import slots as slot_module
    from shiol_lib.domain.slots import parse_cron, slots_between

    spec = parse_cron("15 6,12,18 * * *")
    start, end = datetime(2024, 3, 1, tzinfo=NEW_YORK), datetime(2024, 3, 22, tzinfo=NEW_YORK)

    def cold() -> None:
        slot_module._day_slots.cache_clear()
        slots_between(spec, start, end)

    return {
        "three_weeks_s": _best(cold, repeat),
        "three_weeks_cached_s": _best(lambda: slots_between(spec, start, end), repeat),
    }


def _measured(results: dict[str, Any], part: str, call: Callable[[], Any]) -> None:
    """Run one part, keeping the 1-minute load average at its start and end beside its figures."""
    start = os.getloadavg()[0]
    results[part] = call()
    results.setdefault("load_average_1m", {})[part] = [round(start, 2), round(os.getloadavg()[0], 2)]


def _print_table(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print(
        f"machine: {machine['cores']} cores, 1-minute load average {machine['load_average_1m_start']:.2f} at the "
        f"start, {machine['load_average_1m_end']:.2f} at the end"
    )
    if "evaluation" in results:
        header = ("stored tickets", "full s", "incremental s", "SQL reference s", "write+snapshot s", "store MB")
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, (15, 9, 14, 16, 17, 9), strict=True)))
        for n, row in results["evaluation"].items():
            print(
                f"{int(n):>15,} {row['full_s']:>9.3f} {row['incremental_s']:>14.3f} "
                f"{row['sql_reference_s']:>16.3f} {row['write_snapshot_s']:>17.3f} {row.get('store_mb', 0):>9.1f}"
            )
    if "greedy" in results:
        greedy = results["greedy"]
        print(
            f"weight objective, one evaluation ({greedy['pools']} pools x 100 picks): "
            f"{greedy['objective_eval_s']:.4f} s"
        )
    if "slots" in results:
        print(
            f"three weeks of evaluation slots: {results['slots']['three_weeks_s'] * 1000:.2f} ms cold, "
            f"{results['slots']['three_weeks_cached_s'] * 1000:.2f} ms cached"
        )
    if "pipeline" in results:
        pipeline_bench.print_pipeline(results["pipeline"])
    if "scheduler" in results:
        sched = results["scheduler"]
        print(
            f"idle scheduler ({sched['window_s']:.0f} s): {sched['cpu_percent']:.3f} % of a core, "
            f"RSS {sched['rss_mb']:.1f} MB, USS {sched['uss_mb']:.1f} MB, {sched['modules']} modules"
        )
    for name, row in results.get("cli", {}).items():
        print(
            f"shiol {name:<20} median {row['wall_s']:.2f} s wall (min {row['min_wall_s']:.2f}), "
            f"{row['cpu_s']:.2f} s CPU"
        )
    for n, row in results.get("archive", {}).items():
        print(f"archive of {int(n):,} runs: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "runs"))
    if "update" in results:
        print(
            f"update-data --offline, empty home: {results['update']['wall_s']:.2f} s wall, "
            f"{results['update']['cpu_s']:.2f} s CPU"
        )
    print(f"1-minute load average by part (start, end): {results.get('load_average_1m')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="evaluation up to 1e5 tickets, short validation")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    parser.add_argument("--repeat", type=int, default=1, help="best of N for the repeatable measurements")
    parser.add_argument("--sizes", type=int, nargs="*", help="stored-ticket counts (default 1e4 1e5 1e6)")
    parser.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS), help="what to measure (default all)")
    parser.add_argument("--archive-cache", type=Path, default=ARCHIVE_CACHE, help="where the built archives are kept")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "load_average_1m_start": os.getloadavg()[0]}}
    if "pipeline" in args.parts:  # first: the large stores come after
        _measured(results, "pipeline", lambda: pipeline_bench.bench_notebook_vs_inprocess(args.quick))
    if "scheduler" in args.parts:
        _measured(results, "scheduler", lambda: processes.idle_scheduler(20.0 if args.quick else 60.0))
    commands = 3 if args.quick else 5
    if "cli" in args.parts:
        _measured(results, "cli", lambda: processes.cli_latencies(commands))
    if "update" in args.parts:
        _measured(results, "update", lambda: processes.data_update(commands))
    if "greedy" in args.parts:
        _measured(results, "greedy", lambda: bench_greedy(max(args.repeat, 3)))
    if "slots" in args.parts:
        _measured(results, "slots", lambda: bench_slots(max(args.repeat, 3)))
    if "evaluation" in args.parts:
        _measured(results, "evaluation", lambda: {str(n): bench_evaluation(n, args.repeat) for n in sizes})
        results["snapshot"] = {
            n: {"store_mb": row["store_mb"], "write_snapshot_s": row["write_snapshot_s"]}
            for n, row in results["evaluation"].items()
        }
    if "archive" in args.parts:
        _measured(results, "archive", lambda: archive_bench.measure(args.archive_cache, quick=args.quick))
    results["machine"]["load_average_1m_end"] = os.getloadavg()[0]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        _print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
