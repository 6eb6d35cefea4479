"""Evaluation against a brute-force reference, the performance summary and a leaked-ticket control."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from analysis_support import real_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiol_lib.analysis.evaluation import (
    evaluate_tickets,
    select_unevaluated,
    summarize_draws,
    summarize_performance,
    ticket_keys,
)
from shiol_lib.domain.draw_calendar import expected_draws
from shiol_lib.errors import DrawFrameError

WHITES = ["n1", "n2", "n3", "n4", "n5"]
DAYS = expected_draws(date(2016, 1, 1), date(2016, 3, 1))
# The current prize table, written out literally (jackpot valued at 0).
PRIZES = {
    (5, True): 0,
    (5, False): 1_000_000,
    (4, True): 50_000,
    (4, False): 100,
    (3, True): 100,
    (3, False): 7,
    (2, True): 7,
    (1, True): 4,
    (0, True): 4,
}


def _reference(ticket: dict, draw: dict) -> dict:
    whites = len(set(ticket["whites"]) & set(draw["whites"]))
    pb = ticket["pb"] == draw["pb"]
    prize = PRIZES.get((whites, pb), 0)
    mult = draw["multiplier"]
    if mult is None:
        with_pp = None
    elif (whites, pb) == (5, False):
        with_pp = 2_000_000
    else:
        with_pp = prize * mult
    tier = f"{whites}+PB" if pb else (str(whites) if whites >= 3 else "")
    return {
        "white_matches": whites,
        "pb_match": pb,
        "prize": prize,
        "prize_power_play": with_pp,
        "tier": tier,
        "jackpot": whites == 5 and pb,
    }


@st.composite
def draws_and_tickets(draw: st.DrawFn) -> tuple[list[dict], list[dict]]:
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=5, unique=True))
    draws = [
        {
            "draw_date": d,
            "whites": sorted(draw(st.lists(st.integers(1, 69), min_size=5, max_size=5, unique=True))),
            "pb": draw(st.integers(1, 26)),
            "multiplier": draw(st.sampled_from([None, 2, 3, 4, 5, 10])),
        }
        for d in sorted(days)
    ]
    tickets = []
    for _ in range(draw(st.integers(1, 25))):
        target = draw(st.sampled_from(draws + [None]))  # None: a drawing not yet known
        day = target["draw_date"] if target else DAYS[-1] + timedelta(days=3)
        keep = draw(st.integers(0, 5)) if target else 0
        chosen = set(draw(st.permutations(target["whites"]))[:keep]) if target else set()
        while len(chosen) < 5:
            chosen.add(draw(st.integers(1, 69)))
        pb = target["pb"] if target and draw(st.booleans()) else draw(st.integers(1, 26))
        tickets.append({"draw_date": day, "whites": sorted(chosen), "pb": pb, "target": target})
    return draws, tickets


def _frames(draws: list[dict], tickets: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    draw_frame = pd.DataFrame(
        [
            {
                "draw_date": pd.Timestamp(d["draw_date"]),
                **dict(zip(WHITES, d["whites"])),
                "pb": d["pb"],
                "multiplier": d["multiplier"],
            }
            for d in draws
        ]
    )
    draw_frame["multiplier"] = draw_frame["multiplier"].astype("Int64")
    ticket_frame = pd.DataFrame(
        [
            {"draw_date": pd.Timestamp(t["draw_date"]), "rank": i + 1, **dict(zip(WHITES, t["whites"])), "pb": t["pb"]}
            for i, t in enumerate(tickets)
        ]
    )
    return draw_frame, ticket_frame


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(draws_and_tickets())
def test_evaluation_matches_brute_force(case: tuple[list[dict], list[dict]]) -> None:
    draws, tickets = case
    draw_frame, ticket_frame = _frames(draws, tickets)
    result = evaluate_tickets(ticket_frame, draw_frame).set_index("rank")
    known = [(i + 1, t) for i, t in enumerate(tickets) if t["target"] is not None]
    assert sorted(result.index) == [rank for rank, _ in known]  # unknown drawings left out
    for rank, ticket in known:
        expected = _reference(ticket, ticket["target"])
        row = result.loc[rank]
        for column in ("white_matches", "pb_match", "prize", "tier", "jackpot"):
            assert row[column] == expected[column], (column, ticket)
        if expected["prize_power_play"] is None:
            assert pd.isna(row["prize_power_play"])
        else:
            assert row["prize_power_play"] == expected["prize_power_play"]


def test_jackpot_valued_zero_and_counted_apart() -> None:
    frame = real_frame().iloc[-3:]
    tickets = frame[["draw_date", *WHITES, "pb"]].assign(rank=1)
    result = evaluate_tickets(tickets, frame)
    assert result["jackpot"].all() and (result["prize"] == 0).all() and (result["tier"] == "5+PB").all()
    summary = summarize_performance(result)
    assert summary.jackpots == 3 and summary.prize_per_dollar == 0.0


def test_select_unevaluated_new_or_changed_only() -> None:
    frame = real_frame().iloc[-4:].reset_index(drop=True)
    tickets = pd.concat(
        [
            frame[["draw_date", *WHITES, "pb"]].assign(rank=1),
            frame[["draw_date", *WHITES, "pb"]].assign(rank=2, pb=lambda d: d["pb"] % 26 + 1),
        ],
        ignore_index=True,
    )
    future = tickets.iloc[[0]].assign(draw_date=pd.Timestamp("2030-01-02"))
    tickets = pd.concat([tickets, future], ignore_index=True)
    assert len(select_unevaluated(tickets, frame, pd.DataFrame(columns=["ticket_key", "draw_hash"]))) == 8
    done = evaluate_tickets(tickets, frame)[["ticket_key", "draw_hash"]]
    assert select_unevaluated(tickets, frame, done).empty
    corrected = frame.copy()
    corrected.loc[2, "multiplier"] = 10 if corrected.loc[2, "multiplier"] != 10 else 2
    again = select_unevaluated(tickets, corrected, done)
    assert set(again["draw_date"]) == {frame.loc[2, "draw_date"]} and len(again) == 2
    keyed = select_unevaluated(
        tickets.assign(my_key=range(len(tickets))),
        corrected,
        pd.DataFrame({"ticket_key": ["0", "1"], "draw_hash": ["x", "y"]}),
        key_column="my_key",
    )
    assert len(keyed) == 8 and "my_key" in keyed
    assert ticket_keys(tickets).iloc[0].startswith(frame.loc[0, "draw_date"].strftime("%Y-%m-%d"))


def test_edge_test_detects_leaked_tickets() -> None:
    """Negative control: tickets that peek at the drawing must be flagged."""
    frame = real_frame().iloc[-30:]
    rng = np.random.default_rng(0)
    rows = []
    for _, draw in frame.iterrows():
        for rank in range(1, 101):
            others = rng.choice(np.setdiff1d(np.arange(1, 70), draw[WHITES]), 4, replace=False)
            whites = sorted([int(draw["n1"]), *others])  # one drawn white ball in every ticket
            rows.append(
                {
                    "draw_date": draw["draw_date"],
                    "rank": rank,
                    **dict(zip(WHITES, whites)),
                    "pb": int(rng.integers(1, 27)),
                }
            )
    summary = summarize_performance(evaluate_tickets(pd.DataFrame(rows), frame))
    assert summary.edge and summary.white_test.p_value < 1e-6 and summary.white_test.p_exact < 1e-6
    assert summary.conclusion.startswith("Evidence of an edge")


def test_random_tickets_summary_and_conclusion() -> None:
    frame = real_frame().iloc[-60:]
    rng = np.random.default_rng(1)
    rows = [
        {
            "draw_date": d,
            "rank": r,
            **dict(zip(WHITES, np.sort(rng.choice(69, 5, replace=False) + 1))),
            "pb": int(rng.integers(1, 27)),
        }
        for d in frame["draw_date"]
        for r in range(1, 101)
    ]
    evaluations = evaluate_tickets(pd.DataFrame(rows), frame)
    summary = summarize_performance(evaluations, alpha=0.01)
    assert summary.n_draws == 60 and summary.n_tickets == 6000
    assert summary.white_expected == pytest.approx(25 / 69)
    low, high = summary.white_ci
    assert low < summary.white_mean < high
    assert summary.tiers["hits"].sum() == (evaluations["tier"] != "").sum()
    assert summary.tiers["probability"].sum() == pytest.approx(1 / 24.87, rel=1e-3)
    assert summary.prize_per_dollar_expected == pytest.approx(summary.per_draw["prize_expected"].sum() / 12000)
    if not summary.edge:
        assert summary.conclusion.startswith("No evidence of an edge over random tickets (p = ")
    assert "jackpot valued at $0" in summary.conclusion
    assert summary.as_dict()["white_test"]["p_value"] == summary.white_test.p_value
    per_draw = summarize_draws(evaluations)
    assert np.allclose(per_draw["null_mean"], 100 * 25 / 69)


def test_summary_refuses_empty_and_mixed_eras() -> None:
    frame = real_frame()
    with pytest.raises(DrawFrameError, match="no evaluated"):
        summarize_performance(evaluate_tickets(pd.DataFrame(columns=["draw_date", *WHITES, "pb"]), frame))
    mixed = frame.loc[frame["draw_date"].between("2015-09-01", "2015-11-01")]
    tickets = mixed[["draw_date", *WHITES, "pb"]].assign(rank=1)
    with pytest.raises(DrawFrameError, match="eras"):
        summarize_performance(evaluate_tickets(tickets, mixed))
