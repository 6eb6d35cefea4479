"""Research sweeps as independent tasks: a walk-forward backtest and a detection-power study.

Backtest: one task per (configuration, seed, target drawing). A task cuts the shipped history at its
target and runs :func:`run_backtest` over that one drawing (fit, weight tuning, tickets, evaluation),
seeded by ``SeedSequence(seed, target ordinal, configuration index)``. Power study: one task per
synthetic history (bias strength x tested drawings x replicate): the history is generated from its
own key, backtested walk-forward, and tested for "no edge" at ``alpha``. Every task is a pure function
of its key and the shared inputs, so :func:`shiol_lib.analysis.research.engine.run_tasks` may run them anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from shiol_lib.analysis.backtest import BacktestConfig, run_backtest
from shiol_lib.analysis.evaluation import summarize_performance
from shiol_lib.analysis.features import FeatureConfig
from shiol_lib.analysis.model import ModelConfig
from shiol_lib.analysis.research.engine import task_seed
from shiol_lib.analysis.research.synthetic import generate_synthetic_draws
from shiol_lib.analysis.weights import WeightConfig
from shiol_lib.domain.game import WHITE_COUNT, Matrix, matrix_for, prize_tier
from shiol_lib.domain.spans import TargetSpan, targets_with_history

_FAST_FEATURES = FeatureConfig(windows=(5, 10, 20), halflife=10.0, pair_window=20, shape_window=10)
_FAST = BacktestConfig(
    model=ModelConfig(n_estimators=20, min_train_targets=30, features=_FAST_FEATURES),
    weights=WeightConfig(tune_draws=6, max_evaluations=8, pool_size=400),
)

PRESETS: dict[str, BacktestConfig] = {
    "standard": BacktestConfig(),  # the production settings (about 10 s per drawing on one core)
    "fast": _FAST,  # small windows and models: same code paths (about 1 s per drawing)
    "untuned": replace(_FAST, optimize=False),  # fast, with the start weights (no tuning)
}
PLANTED_WHITES = (3, 11, 19, 27, 35, 43, 51, 59)  # the planted-bias numbers of the synthetic tests
POWER_WARMUP = 70  # synthetic drawings before the first tested one (fast preset needs 56)


class BacktestKey(NamedTuple):
    """One backtest task: configuration index, seed and the target drawing's date ordinal."""

    config: int
    seed: int
    ordinal: int


class PowerKey(NamedTuple):
    """One power-study task: bias-strength index, tested-drawings index and replicate number."""

    strength: int
    drawings: int
    history: int


def preset(name: str) -> BacktestConfig:
    """A named research configuration, pinned to one XGBoost thread."""
    if name not in PRESETS:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(PRESETS)}")
    config = PRESETS[name]
    return replace(config, model=replace(config.model, n_jobs=1))


def _warmup(config: BacktestConfig) -> int:
    """Drawings of the era needed before a target (feature warm-up, training targets, tuning)."""
    model = config.model_config()
    tuning = config.weights.tune_draws if config.optimize else 0
    return model.features.required_history + model.min_train_targets + tuning


def backtest_span(frame: pd.DataFrame, first: date, last: date, configurations: Sequence[str]) -> TargetSpan:
    """The drawings of ``frame`` from ``first`` to ``last`` with the era history every configuration needs.

    The span starts at the first drawing with enough earlier drawings of its era; the ones before it are
    the span's ``skipped`` drawings. Raises ``ValueError`` for an empty or era-crossing span and
    :class:`InsufficientHistoryError` when no drawing of the span has enough history.
    """
    if not configurations:
        raise ValueError("nothing to backtest: no configuration given")
    needed = max(_warmup(preset(name)) for name in configurations)
    return targets_with_history((d.date() for d in frame["draw_date"]), first, last, needed)


def backtest_keys(
    frame: pd.DataFrame, first: date, last: date, seeds: Sequence[int], configurations: Sequence[str]
) -> list[BacktestKey]:
    """The tasks of a backtest of every drawing of :func:`backtest_span` (skipped drawings left out)."""
    if not seeds:
        raise ValueError("nothing to backtest: no seed given")
    span = backtest_span(frame, first, last, configurations)
    return [
        BacktestKey(c, int(s), t.toordinal()) for c in range(len(configurations)) for s in seeds for t in span.targets
    ]


def backtest_task(key: BacktestKey, shared: Mapping[str, Any]) -> pd.DataFrame:
    """Tickets of one target drawing, evaluated; from ``shared["draws"]`` and ``shared["configs"]``."""
    target = date.fromordinal(key.ordinal)
    draws: pd.DataFrame = shared["draws"]
    cut = draws.loc[draws["draw_date"] <= pd.Timestamp(target)]
    config = replace(shared["configs"][key.config], test_draws=1, refit_every=1)
    result = run_backtest(cut, config=config, seed=task_seed(key.seed, key.ordinal, key.config))
    out = result.evaluations.drop(columns=["ticket_key"])
    out.insert(0, "seed", key.seed)
    out.insert(0, "configuration", key.config)
    return out


def summarize_backtest(evaluations: pd.DataFrame, names: Sequence[str], *, alpha: float = 0.01) -> pd.DataFrame:
    """Per configuration (seeds pooled): drawings, tickets, mean white matches with its CI, "no edge" p."""
    rows = []
    for index, group in evaluations.groupby("configuration", sort=True):
        summary = summarize_performance(group.drop(columns=["configuration", "seed"]), alpha=alpha)
        rows.append(
            {
                "configuration": names[int(index)],
                "drawings": summary.n_draws,
                "tickets": summary.n_tickets,
                "seeds": int(group["seed"].nunique()),
                "mean_white_matches": summary.white_mean,
                "ci_low": summary.white_ci[0],
                "ci_high": summary.white_ci[1],
                "expected_white_matches": summary.white_expected,
                "p_value": float(summary.white_test.p_value),
                "edge": bool(summary.edge),
                "pb_rate": summary.pb_rate,
                "pb_expected": summary.pb_expected,
            }
        )
    return pd.DataFrame(rows)


def prize_probability(matrix: Matrix) -> float:
    """The exact probability that a random ticket wins any prize tier."""
    whites = [
        math.comb(WHITE_COUNT, k)
        * math.comb(matrix.white_max - WHITE_COUNT, WHITE_COUNT - k)
        / math.comb(matrix.white_max, WHITE_COUNT)
        for k in range(WHITE_COUNT + 1)
    ]
    pb = {True: 1 / matrix.pb_max, False: 1 - 1 / matrix.pb_max}
    return sum(whites[k] * pb[p] for k in range(WHITE_COUNT + 1) for p in (True, False) if prize_tier(k, p))


def hit_rates_by_year(evaluations: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Per configuration and year: white matches, Powerball and any-prize rates beside the exact baseline."""
    rows = []
    for (index, year), group in evaluations.groupby(["configuration", evaluations["draw_date"].dt.year]):
        matrix = matrix_for(group["draw_date"].iloc[0].date())
        rows.append(
            {
                "configuration": names[int(index)],
                "year": int(year),
                "drawings": int(group["draw_date"].nunique()),
                "tickets": len(group),
                "white_mean": float(group["white_matches"].mean()),
                "white_expected": WHITE_COUNT * WHITE_COUNT / matrix.white_max,
                "pb_rate": float(group["pb_match"].mean()),
                "pb_expected": 1 / matrix.pb_max,
                "prize_rate": float((group["tier"].fillna("") != "").mean()),
                "prize_expected": prize_probability(matrix),
            }
        )
    return pd.DataFrame(rows)


def power_keys(n_strengths: int, n_drawings: int, histories: int) -> list[PowerKey]:
    """One task per synthetic history of every (strength, drawings) cell."""
    if min(n_strengths, n_drawings, histories) < 1:
        raise ValueError("the power study needs at least one strength, one drawings count and one history")
    return [PowerKey(s, d, h) for s in range(n_strengths) for d in range(n_drawings) for h in range(histories)]


def power_task(key: PowerKey, shared: Mapping[str, Any]) -> dict[str, Any]:
    """Generate one synthetic history from its key, backtest it and test it for "no edge".

    ``shared``: ``strengths`` (1 = fair), ``drawings`` (tested drawings per history), ``config``, ``seed``,
    ``alpha``.
    """
    strength = float(shared["strengths"][key.strength])
    drawings = int(shared["drawings"][key.drawings])
    seed = task_seed(shared["seed"], key.strength, key.drawings, key.history)
    planted = PLANTED_WHITES if strength != 1.0 else ()
    frame = generate_synthetic_draws(POWER_WARMUP + drawings, seed=seed, biased_whites=planted, bias=strength)
    config = replace(shared["config"], test_draws=drawings, refit_every=drawings)
    result = run_backtest(frame, config=config, seed=seed)
    summary = summarize_performance(result.evaluations, alpha=shared["alpha"])
    return {
        "strength": strength,
        "drawings": drawings,
        "history": key.history,
        "mean_white_matches": summary.white_mean,
        "p_value": float(summary.white_test.p_value),
        "detected": bool(summary.white_test.p_value < shared["alpha"]),
    }


def summarize_power(rows: Sequence[Mapping[str, Any]], *, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (strength, drawings) cell: histories, detections, detection rate, Clopper-Pearson CI."""
    table = pd.DataFrame(list(rows))
    out = []
    for (strength, drawings), group in table.groupby(["strength", "drawings"], sort=True):
        n, k = len(group), int(group["detected"].sum())
        tail = (1 - confidence) / 2
        low = float(stats.beta.ppf(tail, k, n - k + 1)) if k else 0.0
        high = float(stats.beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
        out.append(
            {
                "strength": float(strength),
                "drawings": int(drawings),
                "histories": n,
                "detected": k,
                "detection_rate": k / n,
                "ci_low": low,
                "ci_high": high,
                "median_p_value": float(np.median(group["p_value"])),
            }
        )
    return pd.DataFrame(out)


def plot_power_curve(power: pd.DataFrame, alpha: float) -> Figure:
    """Detection rate (with its CI) against bias strength, one line per tested-drawings count."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    ax = figure.subplots()
    for drawings, group in power.groupby("drawings", sort=True):
        err = [group["detection_rate"] - group["ci_low"], group["ci_high"] - group["detection_rate"]]
        ax.errorbar(
            group["strength"], group["detection_rate"], yerr=err, marker="o", capsize=3, label=f"{drawings} drawings"
        )
    ax.axhline(alpha, color="red", linestyle="--", label=f"nominal alpha {alpha:g}")
    ax.set_xlabel("planted bias strength (1 = fair)")
    ax.set_ylabel("detection rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Power of the walk-forward 'no edge' test")
    ax.legend()
    return figure


def plot_hit_rates(by_year: pd.DataFrame) -> Figure:
    """Per-year mean white matches and any-prize rate beside the exact random-ticket baseline."""
    figure = Figure(figsize=(12, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    for name, group in by_year.groupby("configuration", sort=False):
        left.plot(group["year"], group["white_mean"], marker="o", label=name)
        right.plot(group["year"], group["prize_rate"], marker="o", label=name)
    left.plot(by_year["year"], by_year["white_expected"], color="red", linestyle="--", label="random tickets")
    right.plot(by_year["year"], by_year["prize_expected"], color="red", linestyle="--", label="random tickets")
    left.set_ylabel("mean white matches per ticket")
    right.set_ylabel("share of tickets winning a prize")
    for ax in (left, right):
        ax.set_xlabel("year")
        ax.legend()
    figure.suptitle("Walk-forward backtest per year against the exact baseline")
    return figure
