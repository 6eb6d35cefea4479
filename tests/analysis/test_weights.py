"""Scorer weights: an objective that depends on them, an optimizer that never does worse, safe artefacts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_support import FAST_MODEL, FAST_WEIGHTS, fair_frame

from shiol_lib.analysis.model import fit_model
from shiol_lib.analysis.scoring import Weights
from shiol_lib.analysis.weights import (
    TuningSet,
    build_tuning_set,
    load_weights,
    optimize_weights,
    save_weights,
    tuning_start,
    weight_objective,
)
from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.domain.history import data_hash
from shiol_lib.errors import ArtefactError, ArtefactMismatchError, InsufficientHistoryError, TicketRequestError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return fair_frame(150, seed=21)


@pytest.fixture(scope="module")
def target(frame: pd.DataFrame) -> date:
    return draw_after(frame["draw_date"].iloc[-1].date())


@pytest.fixture(scope="module")
def tuning(frame: pd.DataFrame, target: date) -> TuningSet:
    return build_tuning_set(frame, target, config=FAST_WEIGHTS, model_config=FAST_MODEL, seed=3)


def test_objective_depends_on_the_weights(tuning: TuningSet) -> None:
    values = {
        w: weight_objective(w, tuning)
        for w in (Weights(1, 0, 0), Weights(0, 1, 0), Weights(0, 0, 1), Weights(-1, 0, 0), Weights(1, -1, 0))
    }
    assert len(set(values.values())) == len(values)
    nearby = weight_objective(Weights(1, 0.01, 0), tuning)
    assert nearby != values[Weights(1, 0, 0)]  # smoothed: even a small move changes it
    assert all(0 <= v <= 5 for v in values.values())


def test_objective_scores_actual_outcomes(tuning: TuningSet) -> None:
    """Replacing the tuning drawings' outcomes changes the objective: it measures real matches."""
    w = Weights(1, 0.5, 0.25)
    flipped = replace(tuning, matches=[5 - m for m in tuning.matches])
    assert weight_objective(w, flipped) != weight_objective(w, tuning)


def test_tuning_window_lies_before_the_target_and_ignores_later_draws(
    frame: pd.DataFrame, target: date, tuning: TuningSet
) -> None:
    assert tuning.dates[-1] < target and len(tuning.dates) == FAST_WEIGHTS.tune_draws
    assert tuning.dates == [d.date() for d in frame["draw_date"].iloc[-FAST_WEIGHTS.tune_draws :]]
    earlier = tuning.dates[-1]
    cut = frame.loc[frame["draw_date"].dt.date < earlier]
    again = build_tuning_set(frame, earlier, config=FAST_WEIGHTS, model_config=FAST_MODEL, seed=3)
    same = build_tuning_set(cut, earlier, config=FAST_WEIGHTS, model_config=FAST_MODEL, seed=3)
    for a, b in zip(again.pools, same.pools):
        assert np.array_equal(a.whites, b.whites) and np.array_equal(a.model, b.model)


def test_optimized_weights_at_least_as_good_as_start(frame: pd.DataFrame, tuning: TuningSet) -> None:
    result = optimize_weights(frame, config=FAST_WEIGHTS, model_config=FAST_MODEL, seed=3)
    assert result.objective >= result.start_objective
    assert result.start_objective == pytest.approx(weight_objective(FAST_WEIGHTS.start, tuning))
    assert result.objective == pytest.approx(weight_objective(result.weights, tuning))
    assert result.evaluations <= FAST_WEIGHTS.max_evaluations + 1
    assert np.linalg.norm(result.weights.vector()) == pytest.approx(1.0)
    assert result.data_hash == data_hash(frame) and result.tune_last == tuning.dates[-1]


def test_save_load_and_refusal_for_other_data(tmp_path: Path, frame: pd.DataFrame) -> None:
    result = optimize_weights(frame, config=replace(FAST_WEIGHTS, max_evaluations=4), model_config=FAST_MODEL)
    path = save_weights(result, tmp_path / "weights.json")
    assert json.loads(path.read_text())["data_hash"] == data_hash(frame)
    assert load_weights(path, frame) == result
    before = path.read_bytes()
    changed = frame.copy()
    changed.loc[10, "pb"] = changed.loc[10, "pb"] % 26 + 1
    with pytest.raises(ArtefactMismatchError, match="weights .* other draws"):
        load_weights(path, changed)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["weights.json"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ArtefactError, match="not a"):
        load_weights(tmp_path / "bad.json", frame)


def test_errors() -> None:
    with pytest.raises(InsufficientHistoryError, match="tuning drawings") as err:
        optimize_weights(fair_frame(50), config=FAST_WEIGHTS, model_config=FAST_MODEL)
    assert err.value.available == 50 and err.value.needed == 20 + 30 + 6
    with pytest.raises(TicketRequestError, match="zero"):
        Weights(0, 0, 0).vector()


def test_a_given_tuning_model_gives_the_same_tuning_set_and_a_wrong_one_is_refused(
    frame: pd.DataFrame, target: date, tuning: TuningSet
) -> None:
    first = tuning_start(frame, target, config=FAST_WEIGHTS, model_config=FAST_MODEL)
    assert first == tuning.dates[0]
    model = fit_model(frame, target_date=first, config=FAST_MODEL, seed=3)
    given = build_tuning_set(frame, target, config=FAST_WEIGHTS, model_config=FAST_MODEL, seed=3, model=model)
    for a, b in zip(tuning.pools, given.pools, strict=True):
        assert np.array_equal(a.whites, b.whites) and np.array_equal(a.model, b.model)
    w = Weights(1, 0.5, 0.25)
    assert weight_objective(w, given) == weight_objective(w, tuning)
    later = fit_model(frame, target_date=tuning.dates[1], config=FAST_MODEL, seed=3)
    other_seed = fit_model(frame, target_date=first, config=FAST_MODEL, seed=4)
    for wrong in (later, other_seed):
        with pytest.raises(ArtefactMismatchError, match="tuning model"):
            build_tuning_set(frame, target, config=FAST_WEIGHTS, model_config=FAST_MODEL, seed=3, model=wrong)
