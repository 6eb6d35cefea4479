"""Adaptive analysis: calibrated drift tests, walk-forward feature-family signal, plots as Figures."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from analysis_support import FAST_FEATURES, fair_frame, real_frame
from matplotlib.figure import Figure

from shiol_lib.analysis.research.synthetic import generate_synthetic_draws
from shiol_lib.analysis.signals import (
    compute_drift,
    compute_feature_signal,
    plot_drift,
    plot_feature_signal,
    run_adaptive_analysis,
    summarize_feature_signal,
)
from shiol_lib.errors import InsufficientHistoryError


def test_white_chi_square_is_calibrated_for_draws_without_replacement() -> None:
    """Over fair histories the corrected statistic averages its df (68) and rejects ~5 % at 0.05."""
    statistics, p_values = [], []
    for seed in range(150):
        _, tests = compute_drift(generate_synthetic_draws(60, seed=seed), recent=30)
        era = tests.loc[(tests["kind"] == "white") & (tests["window"] == "era")].iloc[0]
        statistics.append(era["statistic"])
        p_values.append(era["p_value"])
    assert np.mean(statistics) == pytest.approx(68, abs=3.0)
    assert np.mean(np.array(p_values) < 0.05) < 0.12


def test_drift_table_and_planted_bias() -> None:
    per_number, tests = compute_drift(real_frame(), recent=50)
    white = per_number.loc[per_number["kind"] == "white"]
    assert len(white) == 69 and white["recent_count"].sum() == 250
    assert white["era_rate"].sum() == pytest.approx(5.0)
    assert set(tests["window"]) == {"recent", "era"} and tests["p_value"].between(0, 1).all()
    biased = generate_synthetic_draws(400, seed=2, biased_whites=[1, 2, 3, 4], bias=3.0)
    _, tests = compute_drift(biased, recent=50)
    assert tests.query("kind == 'white' and window == 'era'")["p_value"].iloc[0] < 1e-6


def test_feature_signal_per_family_and_sub_window() -> None:
    signal = compute_feature_signal(fair_frame(200), recent=40, sub_windows=4, config=FAST_FEATURES)
    assert set(signal["family"]) == {"frequency", "gap", "recency", "pair", "shape", "all"}
    assert sorted(signal["sub_window"].unique()) == [1, 2, 3, 4]
    assert (signal.groupby("family")["targets"].sum() == 40).all()
    assert np.allclose(signal["improvement"], signal["logloss_uniform"] - signal["logloss_family"])
    summary = summarize_feature_signal(signal)
    assert summary["positive_share"].between(0, 1).all() and len(summary) == 6


def test_run_adaptive_analysis_and_plots(tmp_path: Path) -> None:
    result = run_adaptive_analysis(real_frame())
    assert set(result.drift["kind"]) == {"white", "pb"}
    assert set(result.signal_summary["kind"]) == {"white", "pb"}
    assert result.feature_signal["last_date"].max() < np.datetime64("2024-07-01")
    figures = [plot_drift(result.drift), plot_drift(result.drift, "pb"), plot_feature_signal(result.feature_signal)]
    for figure in figures:
        assert isinstance(figure, Figure) and figure.axes
        figure.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


def test_too_little_history() -> None:
    with pytest.raises(InsufficientHistoryError, match="drift"):
        compute_drift(real_frame(), recent=50, target_date=date(2015, 11, 4))
    with pytest.raises(InsufficientHistoryError, match="feature signal"):
        compute_feature_signal(fair_frame(120), recent=52)
