"""Features: no leakage from the target or later drawings, agreement with a naive reference, errors."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from analysis_support import FAST_FEATURES, fair_frame, real_frame

from shiol_lib.analysis.features import (
    FeatureConfig,
    build_feature_tables,
    build_target_features,
    build_training_table,
    feature_family,
    feature_names,
)
from shiol_lib.errors import DrawFrameError, InsufficientHistoryError, UnknownMatrixError

WHITES = ["n1", "n2", "n3", "n4", "n5"]


def _rows(table: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    return table.loc[table["draw_date"] == day].drop(columns="label").reset_index(drop=True)


@pytest.mark.parametrize("kind", ["white", "pb"])
def test_changing_target_or_later_draws_leaves_target_features_unchanged(kind: str) -> None:
    frame = real_frame()
    i = len(frame) - 40
    day = frame.loc[i, "draw_date"]
    base = build_training_table(frame, kind)
    changed = frame.copy()
    rng = np.random.default_rng(3)
    for j in range(i, len(frame)):  # the target and every later drawing get other numbers
        changed.loc[j, WHITES] = np.sort(rng.choice(np.arange(1, 70), 5, replace=False))
        changed.loc[j, "pb"] = int(rng.integers(1, 27))
    assert not changed.loc[i, WHITES + ["pb"]].equals(frame.loc[i, WHITES + ["pb"]])
    other = build_training_table(changed, kind)
    pd.testing.assert_frame_equal(_rows(base, day), _rows(other, day))
    drawn = set(changed.loc[i, WHITES if kind == "white" else ["pb"]])  # the label alone reads the target
    target_rows = other.loc[other["draw_date"] == day]
    assert set(target_rows.loc[target_rows["label"] == 1, "number"]) == drawn
    single = build_target_features(changed, day.date(), kind)
    pd.testing.assert_frame_equal(single, _rows(base, day))


def test_later_drawings_removed_same_features() -> None:
    frame = real_frame()
    day = frame["draw_date"].iloc[-30]
    full = build_training_table(frame, "white")
    cut = build_training_table(frame.loc[frame["draw_date"] <= day], "white")
    pd.testing.assert_frame_equal(_rows(full, day), _rows(cut, day))


def _reference_row(era: pd.DataFrame, t: int, number: int, config: FeatureConfig) -> dict[str, float]:
    """Naive per-number features of era position ``t`` (loops, no cumulative sums)."""
    sets = [set(r) for r in era[WHITES].to_numpy()]
    seen = [number in s for s in sets[:t]]
    out = {f"freq_{w}": sum(seen[t - w : t]) / w for w in config.windows}
    out["freq_era"] = sum(seen) / t
    last = max((s for s in range(t) if seen[s]), default=-1)
    out["gap"] = float(t - last)
    decay = 0.5 ** (1 / config.halflife)
    out["ewm"] = sum((1 - decay) * decay ** (t - 1 - s) for s in range(t) if seen[s])
    window = sets[t - config.pair_window : t]
    freq = {m: sum(m in s for s in window) / config.pair_window for m in range(1, 70)}
    out["pair_hot"] = sum(freq[m] for s in window if number in s for m in s if m != number) / config.pair_window
    previous = sets[t - 1]
    out["pair_prev"] = sum(len((s & previous) - {number}) for s in window[:-1] if number in s) / config.pair_window
    recent = era[WHITES].to_numpy()[t - config.shape_window : t]
    out["shape_sum"] = recent.sum(axis=1).mean()
    out["shape_odd"] = (recent % 2 == 1).sum(axis=1).mean()
    out["is_odd"] = float(number % 2)
    return out


def test_vectorised_features_match_naive_reference() -> None:
    frame = fair_frame(80, seed=11)
    config = FAST_FEATURES
    table = build_training_table(frame, "white", config)
    for t in (config.required_history, 47, 79):
        day = frame.loc[t, "draw_date"]
        for number in (1, 2, 35, 69):
            row = table.loc[(table["draw_date"] == day) & (table["number"] == number)].iloc[0]
            for name, value in _reference_row(frame, t, number, config).items():
                assert row[name] == pytest.approx(value, abs=1e-12), (t, number, name)


def test_table_layout_and_labels() -> None:
    tables = build_feature_tables(real_frame())
    white, pb = tables["white"], tables["pb"]
    assert list(white.columns) == ["draw_date", "number", *feature_names("white"), "label"]
    assert white.groupby("draw_date")["label"].sum().eq(5).all()
    assert pb.groupby("draw_date")["label"].sum().eq(1).all()
    assert white["draw_date"].min() > pd.Timestamp("2015-10-07")  # current era only, after the warm-up
    assert white["number"].max() == 69 and pb["number"].max() == 26
    assert {feature_family(n) for n in feature_names("white")} == {"frequency", "gap", "recency", "pair", "shape"}


def test_current_era_table_covers_every_target_after_the_warm_up() -> None:
    # Its speed is measured by bench/run.py (the pipeline part), not bounded here by the wall clock.
    table = build_training_table(real_frame(), "white")
    assert table["draw_date"].nunique() > 900


def test_too_little_history_names_counts() -> None:
    frame = real_frame()
    with pytest.raises(InsufficientHistoryError) as err:
        build_target_features(frame, date(2015, 10, 10), "white")  # 1 earlier drawing in the new era
    assert err.value.available == 1 and err.value.needed == 100
    assert "1 earlier drawing" in str(err.value) and "100" in str(err.value)
    with pytest.raises(InsufficientHistoryError, match="needs|need"):
        build_training_table(fair_frame(50), "white")  # 50 drawings, windows need 100
    with pytest.raises(InsufficientHistoryError):
        build_training_table(frame, "white", since=date(2015, 12, 1))


def test_unknown_matrix_and_nan_are_refused() -> None:
    with pytest.raises(UnknownMatrixError, match="2008-06-01"):
        build_target_features(real_frame(), date(2008, 6, 1), "white")
    frame = real_frame()
    frame["pb"] = frame["pb"].astype("float64")
    frame.loc[len(frame) - 3, "pb"] = np.nan
    with pytest.raises(DrawFrameError, match=r"pb .*2024-06-24"):
        build_training_table(frame, "pb")


@pytest.mark.parametrize("step", [1, 2, 4, 5, 13])
def test_carried_pair_counts_equal_a_recount_to_the_last_bit(step: int) -> None:
    """Co-occurrence counts carried from one position to the next give the features of a fresh recount."""
    from shiol_lib.analysis import features

    rng = np.random.default_rng(step)
    x = np.zeros((400, 69))
    for row in x:
        row[rng.choice(69, 5, replace=False)] = 1.0
    cum = np.vstack([np.zeros((1, 69)), np.cumsum(x, axis=0)])
    window = 100
    positions = np.concatenate([np.arange(window, 300, step), [301, 302, 399]])
    carried = features._pair_features(x, cum, positions, window)
    for i, t in enumerate(positions):  # each position alone: its counts recounted from the window's rows
        alone = features._pair_features(x, cum, positions[i : i + 1], window)
        for name, values in carried.items():
            assert np.array_equal(values[i], alone[name][0]), (name, t)
