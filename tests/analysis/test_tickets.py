"""Tickets: valid, distinct, exactly N, ranked by score, reproducible, refused on bad requests."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest
from analysis_support import FAST_MODEL, FAST_WEIGHTS, fair_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiol_lib.analysis.model import NumberProbabilities, fit_model
from shiol_lib.analysis.scoring import Weights, build_shape_profile
from shiol_lib.analysis.tickets import MAX_TICKETS, TICKET_COLUMNS, generate_tickets, select_tickets
from shiol_lib.analysis.weights import optimize_weights
from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.errors import ArtefactMismatchError, TicketRequestError

TARGET = date(2016, 8, 3)
PROFILE = build_shape_profile(fair_frame(150), TARGET)


def _probabilities(seed: int, spread: float) -> NumberProbabilities:
    rng = np.random.default_rng(seed)
    base = NumberProbabilities.uniform(TARGET)
    white = 0.02 + spread * rng.random(69)
    pb = 0.01 + spread * rng.random(26)
    return replace(
        base,
        white=pd.Series(white * 5 / white.sum(), index=base.white.index),
        pb=pd.Series(pb / pb.sum(), index=base.pb.index),
    )


def assert_valid(tickets: pd.DataFrame, n: int, white_max: int = 69, pb_max: int = 26) -> None:
    assert list(tickets.columns) == TICKET_COLUMNS
    assert len(tickets) == n and tickets["rank"].tolist() == list(range(1, n + 1))
    whites = tickets[["n1", "n2", "n3", "n4", "n5"]].to_numpy()
    assert (np.diff(whites, axis=1) > 0).all()  # sorted and distinct
    assert whites.min() >= 1 and whites.max() <= white_max
    assert tickets["pb"].between(1, pb_max).all()
    assert not tickets.duplicated(subset=["n1", "n2", "n3", "n4", "n5", "pb"]).any()
    assert (np.diff(tickets["score"].to_numpy()) <= 1e-12).all()  # rank 1 = best score
    assert all(tickets[c].dtype == np.int64 for c in TICKET_COLUMNS[:-1])


weights_strategy = st.tuples(*(st.floats(-1, 1, allow_nan=False) for _ in range(3))).filter(
    lambda w: np.linalg.norm(w) > 1e-3
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    prob_seed=st.integers(0, 1000),
    spread=st.floats(0.0, 1.0),
    weights=weights_strategy,
)
def test_tickets_are_valid_distinct_and_exactly_n(
    n: int, seed: int, prob_seed: int, spread: float, weights: tuple[float, float, float]
) -> None:
    tickets = select_tickets(_probabilities(prob_seed, spread), Weights(*weights), PROFILE, n=n, seed=seed)
    assert_valid(tickets, n)


def test_same_seed_same_tickets_other_seed_other_tickets() -> None:
    probs = _probabilities(1, 0.3)
    one = select_tickets(probs, Weights(), PROFILE, n=100, seed=42)
    two = select_tickets(probs, Weights(), PROFILE, n=100, seed=42)
    pd.testing.assert_frame_equal(one, two)
    other = select_tickets(probs, Weights(), PROFILE, n=100, seed=43)
    assert not one[["n1", "n2", "n3", "n4", "n5", "pb"]].equals(other[["n1", "n2", "n3", "n4", "n5", "pb"]])


def test_weights_steer_the_selection() -> None:
    """A strong model weight concentrates tickets on the model's favourites; diversity spreads them."""
    probs = _probabilities(2, 1.0)
    favourites = set(probs.white.nlargest(15).index)
    share = {}
    for name, weights in (("model", Weights(1, 0, 0)), ("diversity", Weights(0, 1, 0))):
        t = select_tickets(probs, weights, PROFILE, n=100, seed=9)
        whites = t[["n1", "n2", "n3", "n4", "n5"]].to_numpy().ravel()
        share[name] = np.isin(whites, list(favourites)).mean()
        if name == "diversity":
            assert len(set(whites)) == 69  # every white ball covered
    assert share["model"] > share["diversity"]


@pytest.mark.parametrize("n", [0, -1, MAX_TICKETS + 1, 2.5, True])
def test_bad_ticket_counts_are_refused(n: object) -> None:
    with pytest.raises(TicketRequestError, match="ticket count"):
        select_tickets(_probabilities(0, 0.1), Weights(), PROFILE, n=n)  # type: ignore[arg-type]


def test_generate_tickets_end_to_end_and_refusals() -> None:
    frame = fair_frame(150, seed=5)
    target = draw_after(frame["draw_date"].iloc[-1].date())
    model = fit_model(frame, config=FAST_MODEL, seed=1)
    weights = optimize_weights(frame, config=replace(FAST_WEIGHTS, max_evaluations=4), model_config=FAST_MODEL)
    tickets = generate_tickets(frame, model, weights, target, n=100, seed=7)
    assert list(tickets.columns) == ["draw_date", *TICKET_COLUMNS]
    assert (tickets["draw_date"] == pd.Timestamp(target)).all()
    assert_valid(tickets.drop(columns="draw_date"), 100)
    pd.testing.assert_frame_equal(tickets, generate_tickets(frame, model, weights, target, n=100, seed=7))
    changed = frame.copy()
    changed.loc[60, "pb"] = changed.loc[60, "pb"] % 26 + 1
    with pytest.raises(ArtefactMismatchError):
        generate_tickets(changed, model, weights, target)
    earlier = frame["draw_date"].iloc[-1].date()
    with pytest.raises(ArtefactMismatchError, match="cannot predict"):
        generate_tickets(frame, model, weights, earlier)
    with pytest.raises(TicketRequestError):
        generate_tickets(frame, model, weights, target, n=0)
