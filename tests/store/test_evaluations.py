"""Evaluation in the store: the SQL query against the Python evaluation, pending tickets only, corrections."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from shiol_lib.analysis.evaluation import evaluate_tickets
from shiol_lib.domain.draws import Draw, draw_key
from shiol_lib.domain.game import CURRENT_MATRIX
from shiol_lib.store import Store
from shiol_lib.store import evaluations as evaluation_table
from shiol_lib.store import predictions as prediction_table

FETCHED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WHITES = ["n1", "n2", "n3", "n4", "n5"]
# Drawings of every era; in the current one, each multiplier (2, 3, 4, 5, 10).
DAYS = [
    date(2010, 3, 6),
    date(2013, 5, 8),
    date(2016, 1, 13),
    date(2024, 1, 3),
    date(2024, 4, 24),
    date(2024, 6, 24),
    date(2024, 6, 26),
    date(2024, 6, 29),
]
FUTURE = date(2024, 7, 1)


def _tickets_for(drawing: pd.Series, rng: np.random.Generator, white_max: int) -> pd.DataFrame:
    """Every (white matches, Powerball) combination against ``drawing``, then random tickets."""
    drawn = [int(drawing[c]) for c in WHITES]
    rows = []
    for i in range(40):
        keep = i % 6 if i < 24 else int(rng.integers(0, 3))
        whites = set(rng.permutation(drawn)[:keep].tolist())
        while len(whites) < 5:
            n = int(rng.integers(1, white_max + 1))
            if n not in drawn:
                whites.add(n)
        match_pb = (i // 6) % 2 == 0 if i < 24 else bool(rng.random() < 0.2)
        pb = int(drawing["pb"]) if match_pb else int(drawing["pb"]) % 26 + 1
        rows.append([*sorted(whites), pb])
    frame = pd.DataFrame(rows, columns=[*WHITES, "pb"])
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    frame["score"] = rng.random(len(frame)).round(6)
    return frame


def _seed_store(store: Store, bundled_draws: list[Draw], runs_per_day: int = 2) -> None:
    store.apply_draws(bundled_draws, source="bundled", fetched_at=FETCHED)
    draws = store.read_draws().set_index("draw_date")
    rng = np.random.default_rng(11)
    for day in DAYS:
        white_max = 69 if day >= CURRENT_MATRIX.first_date else 59
        for r in range(runs_per_day):
            tickets = _tickets_for(draws.loc[pd.Timestamp(day)], rng, white_max)
            prediction_table.replace_predictions(store, f"run-{day:%Y%m%d}-{r}", day, tickets)
    prediction_table.replace_predictions(store, "run-future", FUTURE, tickets)


def _python_evaluation(store: Store) -> pd.DataFrame:
    """The Python evaluation of every stored ticket, in the layout of the store's."""
    tickets = prediction_table.read_predictions(store).rename(columns={"target_draw_date": "draw_date"})
    done = evaluate_tickets(tickets, store.read_draws())
    done = done.rename(columns={"draw_date": "target_draw_date", "draw_hash": "draw_key"})
    done["tier"] = done["tier"].replace("", pd.NA)
    return done.sort_values(["run_id", "rank"], ignore_index=True)[evaluation_table.RESULT_COLUMNS]


def _stored(store: Store) -> pd.DataFrame:
    return prediction_table.read_evaluations(store).set_index(["run_id", "rank"]).sort_index()


def _correct(store: Store, day: date, sql_set: str) -> None:
    with store.transaction() as conn:
        conn.execute(f"UPDATE draws SET {sql_set} WHERE draw_date = ?", [day])


def test_draw_key_is_the_recorded_format() -> None:
    """Keys already stored by earlier versions stay valid: the hashed text is unchanged."""
    text = "2024-06-29 1 6 40 51 67 2 3"
    assert draw_key(date(2024, 6, 29), (1, 6, 40, 51, 67, 2), 3) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert draw_key(date(2013, 5, 8), (1, 2, 3, 4, 5, 6), None).startswith(
        hashlib.sha256(b"2013-05-08 1 2 3 4 5 6 -").hexdigest()[:16]
    )


def test_sql_evaluation_equals_the_python_evaluation(store: Store, bundled_draws: list[Draw]) -> None:
    _seed_store(store, bundled_draws)
    expected = _python_evaluation(store)
    assert evaluation_table.count_pending(store) == len(expected) == len(DAYS) * 2 * 40  # the future run waits
    found = evaluation_table.evaluate_pending(store)
    pd.testing.assert_frame_equal(found, expected)
    assert set(found["tier"].dropna()) == {"5+PB", "5", "4+PB", "4", "3+PB", "3", "2+PB", "1+PB", "0+PB"}
    current = found["target_draw_date"] >= pd.Timestamp(CURRENT_MATRIX.first_date)
    assert set(found.loc[current, "multiplier"]) == {2, 3, 4, 5, 10}
    assert found.loc[~current, "prize"].isna().all() and found.loc[current, "prize"].notna().all()
    stored = _stored(store)
    assert len(stored) == len(found) and (stored["draw_key"] == found.set_index(["run_id", "rank"])["draw_key"]).all()
    assert evaluation_table.count_pending(store) == 0 and evaluation_table.evaluate_pending(store).empty


def test_a_corrected_drawing_re_evaluates_its_tickets_only(store: Store, bundled_draws: list[Draw]) -> None:
    _seed_store(store, bundled_draws)
    evaluation_table.evaluate_pending(store, evaluated_at=FETCHED)
    before = _stored(store)
    _correct(store, DAYS[5], "multiplier = NULL")  # no Power Play any more
    _correct(store, DAYS[6], "pb = pb % 26 + 1")  # another Powerball
    assert evaluation_table.count_pending(store) == 2 * 2 * 40
    again = evaluation_table.evaluate_pending(store, evaluated_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert set(again["target_draw_date"].dt.date) == {DAYS[5], DAYS[6]} and len(again) == 160
    expected = _python_evaluation(store)
    pd.testing.assert_frame_equal(
        again, expected.loc[expected["target_draw_date"].dt.date.isin(DAYS[5:7])].reset_index(drop=True)
    )
    assert again.loc[again["target_draw_date"].dt.date == DAYS[5], "prize_power_play"].isna().all()
    after = _stored(store)
    touched = after["target_draw_date"].dt.date.isin(DAYS[5:7])
    pd.testing.assert_frame_equal(after.loc[~touched], before.loc[~touched])  # evaluated_at included
    assert (after.loc[touched, "draw_key"] != before.loc[touched, "draw_key"]).all()
    assert len(after) == len(before)


def test_incremental_evaluation_touches_only_pending_tickets(store: Store, bundled_draws: list[Draw]) -> None:
    _seed_store(store, bundled_draws)
    evaluation_table.evaluate_pending(store, evaluated_at=FETCHED)
    before = _stored(store)
    drawing = store.read_draws().set_index("draw_date").loc[pd.Timestamp(DAYS[3])]
    fresh = _tickets_for(drawing, np.random.default_rng(3), 69)
    prediction_table.replace_predictions(store, "run-new", DAYS[3], fresh)
    prediction_table.replace_predictions(store, f"run-{DAYS[0]:%Y%m%d}-0", DAYS[0], fresh.assign(score=0.5))
    new = evaluation_table.evaluate_pending(store, evaluated_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert sorted(set(new["run_id"])) == [f"run-{DAYS[0]:%Y%m%d}-0", "run-new"] and len(new) == 80
    after = _stored(store)
    untouched = ~after.index.get_level_values("run_id").isin(set(new["run_id"]))
    pd.testing.assert_frame_equal(after.loc[untouched], before.loc[before.index.isin(after.index[untouched])])
    assert (after.loc[~untouched, "evaluated_at"] > before["evaluated_at"].max()).all()
    with store.transaction() as conn:  # the drawing of the future run is published
        conn.execute("INSERT INTO draws VALUES (?, 1, 6, 40, 51, 67, 2, 2, 'test', ?)", [FUTURE, FETCHED])
    assert sorted(set(evaluation_table.evaluate_pending(store)["run_id"])) == ["run-future"]


def test_current_evaluations_include_pending_tickets_without_writing(store: Store, bundled_draws: list[Draw]) -> None:
    _seed_store(store, bundled_draws)
    evaluation_table.evaluate_pending(store)
    _correct(store, DAYS[7], "multiplier = 10")
    stored_before = _stored(store)
    first, last = CURRENT_MATRIX.first_date, DAYS[6]
    current = evaluation_table.read_current_evaluations(store, first_date=first, last_date=last)
    expected = _python_evaluation(store)
    in_span = expected["target_draw_date"].dt.date.between(first, last)
    pd.testing.assert_frame_equal(current, expected.loc[in_span].reset_index(drop=True))
    everything = evaluation_table.read_current_evaluations(store)
    pd.testing.assert_frame_equal(everything, expected)  # the corrected drawing scored on the fly
    pd.testing.assert_frame_equal(_stored(store), stored_before)
    assert evaluation_table.count_pending(store) == 80


@pytest.mark.parametrize("empty", ["nothing stored", "no drawing known"])
def test_nothing_pending(store: Store, bundled_draws: list[Draw], empty: str) -> None:
    if empty == "no drawing known":
        store.apply_draws(bundled_draws[:10], source="bundled", fetched_at=FETCHED)
        tickets = pd.DataFrame(
            {"rank": [1], "n1": [1], "n2": [2], "n3": [3], "n4": [4], "n5": [5], "pb": [6], "score": [0.0]}
        )
        prediction_table.replace_predictions(store, "run-a", FUTURE, tickets)
    found = evaluation_table.evaluate_pending(store)
    assert found.empty and list(found.columns) == evaluation_table.RESULT_COLUMNS
    assert evaluation_table.read_current_evaluations(store).empty


def test_an_evaluation_left_without_its_ticket_does_not_hide_a_pending_one(
    store: Store, bundled_draws: list[Draw]
) -> None:
    """Same count of tickets and current evaluations on a date, other tickets: still pending."""
    _seed_store(store, bundled_draws, runs_per_day=1)
    evaluation_table.evaluate_pending(store)
    run = f"run-{DAYS[4]:%Y%m%d}-0"
    with store.transaction() as conn:  # a ticket removed behind the store's back: its evaluation stays
        conn.execute("DELETE FROM predictions WHERE run_id = ? AND rank = 1", [run])
        conn.execute(
            "INSERT INTO predictions SELECT 'run-other', target_draw_date, 1, n1, n2, n3, n4, n5, pb, score, "
            "created_at FROM predictions WHERE run_id = ? AND rank = 2",
            [run],
        )
    assert evaluation_table.count_pending(store) == 1
    found = evaluation_table.evaluate_pending(store)
    assert found[["run_id", "rank"]].values.tolist() == [["run-other", 1]]
