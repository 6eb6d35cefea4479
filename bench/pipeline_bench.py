"""The pipeline part of ``bench/run.py``: the six step calls in one process, cold then warm, and the notebook pipeline.

* Cold: the previous drawing's run on a new store (history up to the last drawing but one, target the last
  drawing); warm: the next run in the same store (all drawings, the scheduled case), where step 4 finds the
  previous run's kept replays. Wall and CPU seconds per step; step 4's cold / warm ratio (robust to the
  machine's load, both measured in the same minute).
* The notebook pipeline (``processes.notebook_pipeline``: papermill, a kernel per step, archive), cold and
  warm in one home with the same settings: ``notebook_s``, ``ratio`` (notebook / in process), per step its
  fixed cost (notebook step minus the same call in process) and its kernel's peak RSS, the tree's peak RSS.
  The top-level figures are the cold run's (comparable with earlier figures); ``warm_*`` the next run's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import processes

from shiol_lib import steps
from shiol_lib.store import predictions as prediction_table

SEED = 20240701
NOTEBOOK_STEPS = {
    "update_data": "update_data",
    "adaptive_analysis": "analyze_signals",
    "weight_optimization": "optimize_scoring",
    "historical_validation": "validate_history",
    "generate_predictions": "generate_predictions",
    "performance_analysis": "analyze_performance",
}


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _pipeline_calls(
    db: str, tune_draws: int, test_draws: int, history_end: str, target: str
) -> list[tuple[str, Callable[[], object]]]:
    """The six step calls as the notebooks make them, for the drawing after ``history_end`` (or ``target``)."""
    return [
        ("update_data", lambda: steps.update_data(db, offline=True, run_id="bench")),
        (
            "analyze_signals",
            lambda: steps.analyze_signals(db, run_id="bench", history_end=history_end, target_draw_date=target),
        ),
        (
            "optimize_scoring",
            lambda: steps.optimize_scoring(
                db, run_id="bench", history_end=history_end, target_draw_date=target, seed=SEED, tune_draws=tune_draws
            ),
        ),
        (
            "validate_history",
            lambda: steps.validate_history(
                db, run_id="bench", history_end=history_end, seed=SEED, test_draws=test_draws
            ),
        ),
        (
            "generate_predictions",
            lambda: steps.generate_predictions(
                db, run_id="bench", history_end=history_end, target_draw_date=target, n_predictions=100, seed=SEED
            ),
        ),
        ("analyze_performance", lambda: steps.analyze_performance(db, run_id="bench", history_end=history_end)),
    ]


def _timed_calls(plan: list[tuple[str, Callable[[], object]]]) -> tuple[dict[str, float], dict[str, float]]:
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}  # CPU seconds of this process: less sensitive to other users
    for name, call in plan:
        cpu = time.process_time()
        timings[name] = _timed(call)
        cpu_timings[name] = time.process_time() - cpu
    return timings, cpu_timings


def bench_pipeline(quick: bool) -> dict[str, Any]:
    """The six step calls on the bundled data in a temp store, cold then warm (see the module doc)."""
    tune_draws, test_draws = (5, 13) if quick else (20, 52)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "pipeline.duckdb")
        steps.update_data(db, offline=True, run_id="bench-seed")
        days = steps.open_step_store(db).read_draws()["draw_date"].dt.strftime("%Y-%m-%d").tolist()
        timings, cpu_timings = _timed_calls(_pipeline_calls(db, tune_draws, test_draws, days[-2], days[-1]))
        warm, warm_cpu = _timed_calls(_pipeline_calls(db, tune_draws, test_draws, "", ""))
        metrics = prediction_table.run_metrics(steps.open_step_store(db), "bench")
        job = _timed(lambda: steps.evaluate_predictions(db))
    return {
        "inprocess_s": sum(timings.values()),
        "steps": timings,
        "inprocess_cpu_s": sum(cpu_timings.values()),
        "steps_cpu": cpu_timings,
        "evaluate_predictions_s": job,
        "warm_inprocess_s": sum(warm.values()),
        "warm_steps": warm,
        "warm_steps_cpu": warm_cpu,
        "validation_cold_over_warm": timings["validate_history"] / warm["validate_history"],
        "validation_cpu_cold_over_warm": cpu_timings["validate_history"] / max(warm_cpu["validate_history"], 1e-9),
        "previous": [days[-2], days[-1]],
        "settings": {"tune_draws": tune_draws, "test_draws": test_draws, "seed": SEED},
        "backtest_mean_white_matches": metrics["historical_validation"]["mean_white_matches"],
        "backtest_p_value": metrics["performance_analysis"]["backtest_p_value"],
    }


def bench_notebook_vs_inprocess(quick: bool) -> dict[str, Any]:
    """The notebook pipeline and the same calls in process, with the same settings, cold and warm."""
    inprocess = bench_pipeline(quick)
    settings = inprocess["settings"]
    notebook = processes.notebook_pipeline(
        SEED, settings["tune_draws"], settings["test_draws"], previous=tuple(inprocess["previous"])
    )
    cold = notebook["cold"]
    return {
        **inprocess,
        "notebook_s": cold["notebook_s"],
        "notebook_cpu_s": cold["notebook_cpu_s"],
        "ratio": cold["notebook_s"] / inprocess["inprocess_s"],
        "notebook_status": cold["status"],
        "notebook_steps": cold["steps"],
        **_fixed_costs(cold, inprocess["steps"]),
        "kernel_peak_rss_mb": cold["kernel_peak_rss_mb"],
        "tree_peak_rss_mb": cold["tree_peak_rss_mb"],
        "tree_peak_pss_mb": cold.get("tree_peak_pss_mb"),
        "kernel_peak_pss_mb": cold.get("kernel_peak_pss_mb"),
        "timeline": cold.get("timeline"),
        "warm_notebook_s": notebook["notebook_s"],
        "warm_notebook_cpu_s": notebook["notebook_cpu_s"],
        "warm_ratio": notebook["notebook_s"] / inprocess["warm_inprocess_s"],
        "warm_notebook_steps": notebook["steps"],
        "warm_fixed_cost_s": _fixed_costs(notebook, inprocess["warm_steps"])["fixed_cost_s"],
        "warm_kernel_peak_rss_mb": notebook["kernel_peak_rss_mb"],
        "warm_tree_peak_rss_mb": notebook["tree_peak_rss_mb"],
        "warm_tree_peak_pss_mb": notebook.get("tree_peak_pss_mb"),
        "warm_kernel_peak_pss_mb": notebook.get("kernel_peak_pss_mb"),
        "warm_timeline": notebook.get("timeline"),
    }


def _fixed_costs(notebook: dict[str, Any], inprocess_steps: dict[str, float]) -> dict[str, Any]:
    """Per step, the notebook step's duration minus the same call's in process, and their mean."""
    fixed = {}
    for name, step in notebook["steps"].items():
        call = NOTEBOOK_STEPS.get(name)
        if call in inprocess_steps and step["duration_s"] is not None:
            fixed[name] = step["duration_s"] - inprocess_steps[call]
    return {"fixed_cost_s": fixed, "fixed_cost_mean_s": sum(fixed.values()) / len(fixed) if fixed else None}


def print_pipeline(pipeline: dict[str, Any]) -> None:
    """The figures of :func:`bench_notebook_vs_inprocess` (or :func:`bench_pipeline`) as text."""
    print(
        f"pipeline in process ({pipeline['settings']}), cold (the previous drawing's run on a new store): "
        f"{pipeline['inprocess_s']:.2f} s wall, {pipeline['inprocess_cpu_s']:.2f} s CPU; warm (the next run): "
        f"{pipeline['warm_inprocess_s']:.2f} s wall"
    )
    for name, seconds in pipeline["steps"].items():
        print(
            f"  {name:<22} cold {seconds:8.2f} s wall {pipeline['steps_cpu'][name]:8.2f} s CPU; "
            f"warm {pipeline['warm_steps'][name]:8.2f} s wall {pipeline['warm_steps_cpu'][name]:8.2f} s CPU"
        )
    print(
        f"  step 4 cold / warm: {pipeline['validation_cold_over_warm']:.1f} (wall), "
        f"{pipeline['validation_cpu_cold_over_warm']:.1f} (CPU of this process)"
    )
    print(f"  {'(evaluation job)':<22} {pipeline['evaluate_predictions_s']:8.2f} s")
    print(
        f"  backtest mean white matches {pipeline['backtest_mean_white_matches']}, "
        f"p-value {pipeline['backtest_p_value']}"
    )
    if "notebook_s" in pipeline:
        for label, prefix in (("cold", ""), ("warm", "warm_")):
            print(
                f"notebook pipeline, {label}: {pipeline[prefix + 'notebook_s']:.2f} s wall, "
                f"{pipeline[prefix + 'notebook_cpu_s']:.2f} s CPU, ratio {pipeline[prefix + 'ratio']:.2f}; "
                f"kernel peak {pipeline[prefix + 'kernel_peak_rss_mb']:.0f} MB, "
                f"tree peak {pipeline[prefix + 'tree_peak_rss_mb']:.0f} MB; PSS: kernel peak "
                f"{pipeline.get(prefix + 'kernel_peak_pss_mb') or 0:.0f} MB, tree peak "
                f"{pipeline.get(prefix + 'tree_peak_pss_mb') or 0:.0f} MB"
            )
            times = (pipeline.get(prefix + "timeline") or {}).get("steps", {})
            for name, step in pipeline[prefix + "notebook_steps"].items():
                fixed = pipeline[prefix + "fixed_cost_s"].get(name)
                where = times.get(name)
                split = (
                    f"; gap {where['gap_s']:.2f}, to cell 1 {where['to_first_cell_s']:.2f}, "
                    f"cells {where['cells_s']:.2f} s"
                    if where
                    else ""
                )
                print(
                    f"  {name:<22} {step['duration_s'] or 0:8.2f} s fixed cost "
                    f"{'-' if fixed is None else f'{fixed:.2f}'} s, peak {step['peak_rss_mb'] or 0:.0f} MB{split}"
                )
