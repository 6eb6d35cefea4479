"""The research sweeps (notebooks 80 and 81) as the notebooks call them (re-exported by ``steps``).

The coordinating process reads the store, ships the frames to the compute engine (in-process, a
LocalCluster or a cluster by address), and alone writes the results, in one transaction at the end.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from shiol_lib.analysis.research import tasks as research
from shiol_lib.analysis.research.engine import TaskRun, run_tasks
from shiol_lib.domain.history import data_hash
from shiol_lib.domain.spans import TargetSpan
from shiol_lib.steps.pipeline import open_step_store
from shiol_lib.store import predictions as prediction_table

log = logging.getLogger(__name__)


@dataclass
class ResearchOutcome:
    """A sweep's tables and where its tasks ran."""

    figures: pd.DataFrame
    details: pd.DataFrame
    run: TaskRun[Any]
    span: TargetSpan | None = None  # the backtest's drawings and the ones skipped for too little history


def _execution(run: TaskRun[Any]) -> dict[str, Any]:
    return {
        "engine": run.engine,
        "tasks": len(run.results),
        "tasks_by_worker": run.tasks_by_worker,
        "dashboard": run.dashboard,
        "seconds": round(run.seconds, 3),
    }


def research_backtest(
    db_path: str,
    *,
    run_id: str,
    date_from: str,
    date_to: str,
    seed: int,
    seeds: int = 1,
    configurations: tuple[str, ...] | list[str] = ("fast",),
    cluster: str = "none",
    alpha: float = 0.01,
) -> ResearchOutcome:
    """Walk-forward backtest of every stored drawing in a span, per seed and configuration, as tasks.

    The store is read here and only the frames go to the tasks; the figures (``metrics.research_backtest``),
    the per-year hit rates and where the tasks ran are written in one transaction at the end.
    """
    store = open_step_store(db_path)
    frame = store.read_draws()
    names = list(configurations)
    first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
    span = research.backtest_span(frame, first, last, names)
    if span.skipped:
        log.warning(
            "skipping %d drawing(s) %s .. %s: %s; the backtest starts at %s",
            len(span.skipped),
            span.skipped[0],
            span.skipped[-1],
            span.skipped_summary()["reason"],
            span.first_target,
        )
    keys = research.backtest_keys(frame, first, last, [seed + i for i in range(seeds)], names)
    shared = {"draws": frame, "configs": tuple(research.preset(n) for n in names)}
    run = run_tasks(research.backtest_task, keys, shared, cluster=cluster)
    evaluations = pd.concat(run.results, ignore_index=True)
    figures = research.summarize_backtest(evaluations, names, alpha=alpha)
    by_year = research.hit_rates_by_year(evaluations, names)
    top = figures.iloc[0]
    prediction_table.save_artifacts(
        store,
        run_id,
        {
            "metrics.research_backtest": {
                "drawings": int(top["drawings"]),
                "tickets": int(evaluations.shape[0]),
                "mean_white_matches": _number(top["mean_white_matches"]),
                "white_ci": [_number(top["ci_low"]), _number(top["ci_high"])],
                "expected_white_matches": _number(top["expected_white_matches"]),
                "p_value": _number(top["p_value"]),
                "first_target": span.first_target.isoformat(),
                "last_target": span.targets[-1].isoformat(),
                "skipped": span.skipped_summary(),
                "configurations": _records(figures),
            },
            "metrics.research_backtest_execution": _execution(run),
            "research_backtest.by_year": _records(by_year),
        },
        data_hash=data_hash(frame),
    )
    return ResearchOutcome(figures, by_year, run, span)


def detection_power(
    db_path: str,
    *,
    run_id: str,
    seed: int,
    strengths: list[float],
    drawings: list[int],
    histories: int,
    alpha: float = 0.05,
    configuration: str = "fast",
    cluster: str = "none",
) -> ResearchOutcome:
    """How often the walk-forward "no edge" test detects a planted bias, per strength and span, as tasks.

    Strength 1 is a fair history (its detection rate is the false-positive rate). Nothing is read from
    the store; the per-cell table (``metrics.research_power``) is written in one transaction at the end.
    """
    store = open_step_store(db_path)
    keys = research.power_keys(len(strengths), len(drawings), histories)
    shared = {
        "strengths": tuple(float(s) for s in strengths),
        "drawings": tuple(int(d) for d in drawings),
        "config": research.preset(configuration),
        "seed": seed,
        "alpha": alpha,
    }
    run = run_tasks(research.power_task, keys, shared, cluster=cluster)
    rows = pd.DataFrame(run.results)
    cells = research.summarize_power(run.results)
    prediction_table.save_artifacts(
        store,
        run_id,
        {
            "metrics.research_power": {"alpha": alpha, "histories": histories, "cells": _records(cells)},
            "metrics.research_power_execution": _execution(run),
            "research_power.histories": _records(rows),
        },
    )
    return ResearchOutcome(cells, rows, run)


def _number(value: Any) -> float | None:
    """A figure rounded to 12 digits, ``None`` when undefined (a CI over one drawing): valid JSON either way."""
    value = float(value)
    return round(value, 12) if math.isfinite(value) else None


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values, floats rounded to 12 digits (stable text, stable hashes)."""
    return [
        {k: round(v, 12) if isinstance(v, float) else v for k, v in row.items()}
        for row in json.loads(table.to_json(orient="records", double_precision=15))
    ]
