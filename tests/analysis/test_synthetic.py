"""Synthetic histories, and the pipeline against a known truth: finds a planted bias, not a fair one."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest
from analysis_support import FAST_BACKTEST
from scipy import stats

from shiol_lib.analysis.backtest import BacktestConfig, run_backtest
from shiol_lib.analysis.evaluation import summarize_performance
from shiol_lib.analysis.features import FeatureConfig
from shiol_lib.analysis.model import ModelConfig
from shiol_lib.analysis.research.synthetic import generate_synthetic_draws
from shiol_lib.analysis.weights import WeightConfig
from shiol_lib.domain.draw_calendar import expected_draws
from shiol_lib.domain.game import CURRENT_MATRIX
from shiol_lib.domain.history import check_draw_frame

BIASED = [3, 11, 19, 27, 35, 43, 51, 59]


def test_synthetic_history_is_canonical_and_follows_the_calendar() -> None:
    frame = generate_synthetic_draws(300, seed=1)
    pd.testing.assert_frame_equal(check_draw_frame(frame), frame)
    days = [d.date() for d in frame["draw_date"]]
    assert days == expected_draws(CURRENT_MATRIX.first_date, days[-1])
    assert frame[["n1", "n2", "n3", "n4", "n5"]].to_numpy().max() <= 69 and frame["pb"].max() <= 26
    pd.testing.assert_frame_equal(frame, generate_synthetic_draws(300, seed=1))
    assert not frame.equals(generate_synthetic_draws(300, seed=2))


def test_planted_bias_shows_in_the_frequencies() -> None:
    frame = generate_synthetic_draws(2000, seed=3, biased_whites=BIASED, bias=3.0, biased_pb=[7], pb_bias=4.0)
    counts = np.bincount(frame[["n1", "n2", "n3", "n4", "n5"]].to_numpy().ravel(), minlength=70)[1:]
    biased = counts[np.array(BIASED) - 1].mean()
    others = np.delete(counts, np.array(BIASED) - 1).mean()
    assert biased / others > 2.0
    assert (frame["pb"] == 7).mean() > 3 / 26


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        generate_synthetic_draws(10, bias=0.0, biased_whites=[1])
    with pytest.raises(ValueError, match="outside 1-69"):
        generate_synthetic_draws(10, biased_whites=[70], bias=2.0)
    with pytest.raises(ValueError, match="before the current matrix"):
        generate_synthetic_draws(10, start=date(2014, 1, 1))


PLANTED = BacktestConfig(
    test_draws=52,
    refit_every=26,
    model=ModelConfig(n_estimators=60, features=FeatureConfig()),
    weights=WeightConfig(tune_draws=12, max_evaluations=15),
)


def test_planted_bias_is_found_at_one_percent() -> None:
    frame = generate_synthetic_draws(400, seed=11, biased_whites=BIASED, bias=3.0)
    result = run_backtest(frame, config=PLANTED, seed=0)
    summary = summarize_performance(result.evaluations, alpha=0.01)
    assert summary.edge, summary.conclusion
    assert summary.white_test.p_exact < 0.01 and summary.white_test.p_normal < 0.01
    assert summary.white_mean > summary.white_ci[0] > summary.white_expected
    assert summary.conclusion.startswith("Evidence of an edge over random tickets at the 0.01 level")


@pytest.mark.slow
def test_fair_histories_reject_near_the_nominal_rate() -> None:
    """30 fair histories, each backtested walk-forward and tested at alpha = 0.05 with the same statistic."""
    seeds, alpha = 30, 0.05
    config = replace(FAST_BACKTEST, test_draws=30, refit_every=30)
    p_values = []
    for seed in range(seeds):
        frame = generate_synthetic_draws(100, seed=1000 + seed)
        result = run_backtest(frame, config=config, seed=seed)
        p_values.append(summarize_performance(result.evaluations, alpha=alpha).white_test.p_value)
    rejections = sum(p < alpha for p in p_values)
    # Binomial(30, 0.05): P(X >= 7) = 0.0006, so a valid test fails this bound with tiny probability.
    assert rejections <= 6, (rejections, p_values)
    assert stats.binom.sf(rejections - 1, seeds, alpha) > 1e-3
    assert np.median(p_values) > 0.2  # not piled up near 0
