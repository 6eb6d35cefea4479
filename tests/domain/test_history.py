"""The draws frame as analysis input: checks with clear errors, era cuts and the data hash."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from analysis_support import fair_frame, real_frame

from shiol_lib.domain.history import check_artefact_data, check_draw_frame, data_hash, era_history, frame_before
from shiol_lib.errors import ArtefactMismatchError, DrawFrameError, UnknownMatrixError


def test_canonical_frame_passes_unchanged() -> None:
    frame = real_frame()
    checked = check_draw_frame(frame)
    pd.testing.assert_frame_equal(checked, frame)


def test_nan_is_refused_naming_column_and_dates() -> None:
    frame = real_frame()
    frame["n3"] = frame["n3"].astype("float64")
    frame.loc[[100, 200], "n3"] = np.nan
    with pytest.raises(DrawFrameError) as err:
        check_draw_frame(frame)
    message = str(err.value)
    assert "n3" in message and "2 drawing(s)" in message
    for i in (100, 200):
        assert frame.loc[i, "draw_date"].strftime("%Y-%m-%d") in message


def test_missing_column_and_duplicate_dates_are_refused() -> None:
    frame = real_frame()
    with pytest.raises(DrawFrameError, match="lacks column"):
        check_draw_frame(frame.drop(columns=["pb"]))
    doubled = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    with pytest.raises(DrawFrameError, match="more than once"):
        check_draw_frame(doubled)


def test_numbers_outside_the_matrix_of_their_date_are_refused() -> None:
    frame = real_frame()
    old = frame.index[frame["draw_date"] < "2015-10-07"][0]
    frame.loc[old, "n5"] = 66  # fine after 2015-10-07, outside the 1-59 matrix before
    with pytest.raises(DrawFrameError, match="inside"):
        check_draw_frame(frame)


def test_date_before_2009_has_no_matrix() -> None:
    frame = fair_frame()
    frame.loc[0, "draw_date"] = pd.Timestamp("2008-12-31")
    with pytest.raises(UnknownMatrixError, match="2008-12-31"):
        check_draw_frame(frame)


def test_unsorted_whites_are_sorted_and_input_untouched() -> None:
    frame = fair_frame()
    low, high = int(frame.loc[3, "n1"]), int(frame.loc[3, "n5"])
    frame.loc[3, "n1"], frame.loc[3, "n5"] = high, low
    before = frame.copy()
    checked = check_draw_frame(frame)
    assert (np.diff(checked[["n1", "n2", "n3", "n4", "n5"]].to_numpy(), axis=1) > 0).all()
    pd.testing.assert_frame_equal(frame, before)


def test_era_history_cuts_strictly_before_target_within_era() -> None:
    matrix, era = era_history(real_frame(), date(2024, 6, 29))
    assert matrix.white_max == 69
    assert era["draw_date"].min() >= pd.Timestamp("2015-10-07")
    assert era["draw_date"].max() == pd.Timestamp("2024-06-26")
    assert frame_before(real_frame(), date(2015, 10, 7))["draw_date"].max() < pd.Timestamp("2015-10-07")


def test_data_hash_is_stable_and_sensitive() -> None:
    frame = real_frame()
    assert data_hash(frame) == data_hash(frame.sample(frac=1.0, random_state=1))  # order of rows irrelevant
    changed = frame.copy()
    changed.loc[10, "multiplier"] = pd.NA if not pd.isna(changed.loc[10, "multiplier"]) else 2
    assert data_hash(changed) != data_hash(frame)
    changed = frame.copy()
    changed.loc[1000, "pb"] = changed.loc[1000, "pb"] % 26 + 1
    assert data_hash(changed) != data_hash(frame)


def test_artefact_data_accepts_extension_refuses_change() -> None:
    frame = real_frame()
    head = frame.iloc[:1000]
    stored = data_hash(head)
    last = head["draw_date"].iloc[-1].date()
    check_artefact_data(frame, stored_hash=stored, last_date=last, what="model")  # later drawings appended: fine
    changed = frame.copy()
    changed.loc[500, "pb"] = changed.loc[500, "pb"] % 26 + 1
    with pytest.raises(ArtefactMismatchError, match="other draws"):
        check_artefact_data(changed, stored_hash=stored, last_date=last, what="model")


def test_prefix_hashes_are_the_data_hashes_of_the_drawings_before_each_cut() -> None:
    from shiol_lib.domain.history import prefix_hashes

    frame = real_frame()
    days = frame["draw_date"].dt.date
    cuts = [days.iloc[0], days.iloc[700], date(2020, 1, 2), days.iloc[-1], date(2030, 1, 1), days.iloc[700]]
    found = prefix_hashes(frame.sample(frac=1.0, random_state=2), cuts)
    assert set(found) == set(cuts)
    for cut in cuts:
        assert found[cut] == data_hash(frame_before(frame, cut))
