"""The per-number model: valid probabilities, determinism, time order, artefacts refused for other data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_support import FAST_MODEL, fair_frame, real_frame

from shiol_lib.analysis.model import NumberModel, data_hash, fit_model, load_model, predict_probabilities, save_model
from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.errors import ArtefactError, ArtefactMismatchError, InsufficientHistoryError


@pytest.fixture(scope="module")
def real_model() -> NumberModel:
    return fit_model(real_frame(), seed=5)


def test_probabilities_valid_for_next_drawing(real_model: NumberModel) -> None:
    target = draw_after(date(2024, 6, 29))
    probs = predict_probabilities(real_model, real_frame(), target)
    assert target == date(2024, 7, 1)
    assert probs.white.index.tolist() == list(range(1, 70)) and probs.pb.index.tolist() == list(range(1, 27))
    assert probs.white.sum() == pytest.approx(5.0, abs=1e-9)
    assert probs.pb.sum() == pytest.approx(1.0, abs=1e-12)
    assert ((probs.white > 0) & (probs.white < 1)).all() and ((probs.pb > 0) & (probs.pb < 1)).all()


def test_training_is_time_ordered(real_model: NumberModel) -> None:
    meta = real_model.meta
    assert meta.train_last_target == date(2024, 6, 29) < date(2024, 7, 1)
    assert meta.train_first_target > date(2015, 10, 7)
    assert meta.data_hash == data_hash(real_frame())
    model = fit_model(real_frame(), target_date=date(2020, 1, 4), config=FAST_MODEL)
    assert model.meta.train_last_target < date(2020, 1, 4) and model.meta.data_last_date < date(2020, 1, 4)
    assert model.meta.data_hash == data_hash(real_frame().query("draw_date < '2020-01-04'"))


def test_later_drawings_do_not_change_the_model() -> None:
    frame = real_frame()
    target = date(2023, 1, 4)
    later = frame["draw_date"] >= pd.Timestamp(target)
    changed = frame.copy()
    changed.loc[later, "pb"] = changed.loc[later, "pb"] % 26 + 1
    a = predict_probabilities(fit_model(frame, target_date=target, config=FAST_MODEL), frame, target)
    b = predict_probabilities(fit_model(changed, target_date=target, config=FAST_MODEL), changed, target)
    pd.testing.assert_series_equal(a.white, b.white)
    pd.testing.assert_series_equal(a.pb, b.pb)


def test_same_seed_same_predictions_other_seed_differs() -> None:
    frame = fair_frame(200)
    target = draw_after(frame["draw_date"].iloc[-1].date())
    one = predict_probabilities(fit_model(frame, config=FAST_MODEL, seed=1), frame, target)
    two = predict_probabilities(fit_model(frame, config=FAST_MODEL, seed=1), frame, target)
    other = predict_probabilities(fit_model(frame, config=FAST_MODEL, seed=2), frame, target)
    assert np.array_equal(one.white.to_numpy(), two.white.to_numpy())
    assert np.array_equal(one.pb.to_numpy(), two.pb.to_numpy())
    assert not np.array_equal(one.white.to_numpy(), other.white.to_numpy())


def test_save_load_round_trip(tmp_path: Path, real_model: NumberModel) -> None:
    frame = real_frame()
    directory = save_model(real_model, tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "pb.json", "white.json"]
    meta = json.loads((directory / "model.json").read_text())
    assert meta["data_hash"] == data_hash(frame) and meta["seed"] == 5
    assert meta["train_first_target"] < meta["train_last_target"] == "2024-06-29"
    assert "freq_era" in meta["feature_names"]["white"]
    json.loads((directory / "white.json").read_text())  # XGBoost's own JSON
    loaded = load_model(directory, frame)
    a = predict_probabilities(real_model, frame, date(2024, 7, 1))
    b = predict_probabilities(loaded, frame, date(2024, 7, 1))
    np.testing.assert_allclose(a.white.to_numpy(), b.white.to_numpy(), rtol=1e-6)


def test_model_refused_for_other_data(tmp_path: Path, real_model: NumberModel) -> None:
    directory = save_model(real_model, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    changed = real_frame()
    changed.loc[700, "pb"] = changed.loc[700, "pb"] % 26 + 1
    with pytest.raises(ArtefactMismatchError, match="other draws"):
        load_model(directory, changed)
    with pytest.raises(ArtefactMismatchError):
        predict_probabilities(real_model, changed, date(2024, 7, 1))
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before  # nothing written
    with pytest.raises(ArtefactError, match="no readable model"):
        load_model(tmp_path / "nowhere", real_frame())


def test_model_refuses_targets_it_has_seen(real_model: NumberModel) -> None:
    with pytest.raises(ArtefactMismatchError, match="cannot predict"):
        predict_probabilities(real_model, real_frame(), date(2024, 6, 29))


def test_too_little_history_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InsufficientHistoryError) as err:
        fit_model(real_frame(), target_date=date(2016, 1, 6))  # ~26 drawings of the new era
    assert err.value.needed > err.value.available
    with pytest.raises(InsufficientHistoryError, match="training target"):
        fit_model(fair_frame(120))  # 20 targets after the 100-drawing warm-up, 50 needed
    assert not any(tmp_path.iterdir())
