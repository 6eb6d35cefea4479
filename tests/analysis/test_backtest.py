"""Walk-forward backtest: time order, no leakage from the scored drawings, refit cadence, windows, errors."""

from __future__ import annotations

from dataclasses import astuple, replace

import numpy as np
import pandas as pd
import pytest
from analysis_support import FAST_BACKTEST, fair_frame, real_frame

from shiol_lib.analysis import backtest
from shiol_lib.analysis.backtest import BacktestConfig, BacktestResult, run_backtest
from shiol_lib.analysis.weights import optimize_weights
from shiol_lib.domain.history import frame_before
from shiol_lib.errors import InsufficientHistoryError

CONFIG = replace(FAST_BACKTEST, test_draws=12, refit_every=5)
NUMBERS = ["n1", "n2", "n3", "n4", "n5", "pb"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return fair_frame(100, seed=31)


@pytest.fixture(scope="module")
def result(frame: pd.DataFrame) -> BacktestResult:
    return run_backtest(frame, config=CONFIG, seed=4)


def test_layout_and_refit_cadence(frame: pd.DataFrame, result: BacktestResult) -> None:
    targets = frame["draw_date"].iloc[-12:].tolist()
    assert result.per_draw["draw_date"].tolist() == targets
    assert (result.per_draw["tickets"] == 100).all() and len(result.evaluations) == 1200
    assert result.refits["refit_target"].tolist() == [targets[0], targets[5], targets[10]]
    assert (result.refits["train_last_target"] < result.refits["refit_target"]).all()
    assert (result.refits["objective"] >= result.refits["start_objective"]).all()
    assert np.allclose(result.per_draw["white_expected"], 25 / 69)


def test_scored_drawings_never_reach_their_tickets(frame: pd.DataFrame, result: BacktestResult) -> None:
    """Changing drawing k and every later one leaves the tickets of targets up to k unchanged."""
    k = len(frame) - 6
    changed = frame.copy()
    rng = np.random.default_rng(0)
    for j in range(k, len(frame)):
        changed.loc[j, NUMBERS[:5]] = np.sort(rng.choice(np.arange(1, 70), 5, replace=False))
        changed.loc[j, "pb"] = int(rng.integers(1, 27))
    other = run_backtest(changed, config=CONFIG, seed=4)
    cutoff = frame.loc[k, "draw_date"]
    upto = result.tickets["draw_date"] <= cutoff
    pd.testing.assert_frame_equal(result.tickets.loc[upto], other.tickets.loc[upto])
    assert not result.evaluations.loc[result.evaluations["draw_date"] == cutoff, "white_matches"].equals(
        other.evaluations.loc[other.evaluations["draw_date"] == cutoff, "white_matches"]
    )


def test_same_seed_same_backtest(frame: pd.DataFrame, result: BacktestResult) -> None:
    again = run_backtest(frame, config=CONFIG, seed=4)
    pd.testing.assert_frame_equal(result.tickets, again.tickets)


def test_rolling_window_and_no_optimization(frame: pd.DataFrame) -> None:
    config = replace(CONFIG, window="rolling", rolling_targets=35, optimize=False, test_draws=5)
    result = run_backtest(frame, config=config)
    assert (result.refits["train_targets"] == 35).all()
    assert result.refits["objective"].isna().all()
    with pytest.raises(ValueError, match="window"):
        run_backtest(frame, config=replace(CONFIG, window="random"))  # type: ignore[arg-type]


def test_insufficient_history_and_era_crossing() -> None:
    with pytest.raises(InsufficientHistoryError) as err:
        run_backtest(fair_frame(60), config=CONFIG)
    assert err.value.needed > err.value.available
    with pytest.raises(InsufficientHistoryError, match="crosses into the 2015-69/26 era"):
        run_backtest(real_frame(), config=BacktestConfig(test_draws=1200))


def test_a_refit_reuses_an_earlier_model_as_its_tuning_model(frame: pd.DataFrame, monkeypatch) -> None:
    """refit_every dividing tune_draws: the tuning model of a later refit is an earlier refit's model."""
    config = replace(CONFIG, test_draws=12, refit_every=3)  # tune_draws 6: refits 3 and 4 reuse refits 1 and 2
    fits = []
    real_fit = backtest.fit_model

    def counting_fit(*args, **kwargs):
        fits.append(kwargs["target_date"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(backtest, "fit_model", counting_fit)
    result = run_backtest(frame, config=config, seed=4)
    assert len(fits) == len(set(fits)) == 4 + 2  # 4 refit models, 2 tuning models of their own
    targets = result.refits["refit_target"].dt.date.tolist()
    for target, row in zip(targets, result.refits.to_dict("records"), strict=True):
        alone = optimize_weights(
            frame_before(frame, target), target_date=target, config=config.weights, model_config=config.model, seed=4
        )  # fits its own tuning model
        assert (row["w_model"], row["w_diversity"], row["w_shape"]) == astuple(alone.weights)
        assert row["objective"] == alone.objective
