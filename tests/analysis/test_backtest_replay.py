"""Kept replays: refits on fixed era drawings, keys that hash what determines a result, and a run that
reuses an earlier run's results giving exactly what a fresh run gives (also when computed in two processes)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd
import pytest
from analysis_support import FAST_BACKTEST, fair_frame

from shiol_lib.analysis import replay
from shiol_lib.analysis.backtest import BacktestResult, plan_refits, replay_keys, run_backtest

CONFIG = replace(FAST_BACKTEST, test_draws=10, refit_every=4, refit_anchor="era")
SEED = 5


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return fair_frame(100, seed=23)


@pytest.fixture(scope="module")
def previous(frame: pd.DataFrame) -> BacktestResult:
    """The previous drawing's run: one drawing less, nothing kept before it, refits in two processes."""
    return run_backtest(frame.iloc[:-1], config=CONFIG, seed=SEED, known={}, workers=2)


@pytest.fixture(scope="module")
def fresh(frame: pd.DataFrame) -> BacktestResult:
    return run_backtest(frame, config=CONFIG, seed=SEED, known={})


def _kept(result: BacktestResult) -> dict[str, bytes]:
    return {entry.key: entry.payload for entry in result.computed}


def _assert_same(found: BacktestResult, expected: BacktestResult) -> None:
    for name in ("tickets", "evaluations", "per_draw", "refits"):
        pd.testing.assert_frame_equal(getattr(found, name), getattr(expected, name), check_exact=True)


def test_refits_fall_on_fixed_drawings_of_the_era(frame: pd.DataFrame) -> None:
    now, before = plan_refits(frame, CONFIG), plan_refits(frame.iloc[:-1], CONFIG)
    days = frame["draw_date"].dt.date.tolist()  # one era: positions count from the first drawing
    assert all(days.index(g.anchor) % 4 == 0 for g in now)
    assert now[0].anchor < now[0].targets[0] == days[-10]  # the span's first refit lies before the span
    assert [t for g in now for t in g.targets] == days[-10:]
    anchor_of = {t: g.anchor for g in before for t in g.targets}
    assert all(anchor_of.get(t, g.anchor) == g.anchor for g in now for t in g.targets)


def test_the_next_run_replays_only_the_new_drawing_and_equals_a_fresh_run(
    frame: pd.DataFrame,
    previous: BacktestResult,
    fresh: BacktestResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert previous.reused_targets == 0 and {e.kind for e in previous.computed} == {"refit", "tickets"}
    with caplog.at_level(logging.INFO, logger="shiol_lib.analysis.backtest"):
        warm = run_backtest(frame, config=CONFIG, seed=SEED, known=_kept(previous))
    _assert_same(warm, fresh)
    assert warm.reused_targets == 9
    new = [(e.kind, e.draw_date) for e in warm.computed]
    last = frame["draw_date"].iloc[-1].date()
    assert ("tickets", last) in new and len([k for k, _ in new if k == "tickets"]) == 1
    assert "0 refit(s) computed, 9 target(s) kept from earlier runs" in caplog.text  # its refit was kept too


def test_a_run_from_kept_results_alone_computes_nothing_and_equals_a_fresh_run(
    frame: pd.DataFrame,
    previous: BacktestResult,
    fresh: BacktestResult,
) -> None:
    again = run_backtest(frame, config=CONFIG, seed=SEED, known=_kept(previous) | _kept(fresh))
    assert again.computed == [] and again.reused_targets == 10
    _assert_same(again, fresh)


def test_two_processes_compute_what_one_computes(frame: pd.DataFrame, previous: BacktestResult) -> None:
    alone = run_backtest(frame.iloc[:-1], config=CONFIG, seed=SEED, known={}, workers=1)
    _assert_same(previous, alone)
    assert _kept(previous) == _kept(alone)  # the kept bytes too


def test_a_changed_drawing_changes_the_keys_from_it_on(frame: pd.DataFrame) -> None:
    changed = frame.copy()
    row = len(frame) - 4
    changed.loc[row, "pb"] = changed.loc[row, "pb"] % 26 + 1
    cut = frame.loc[row, "draw_date"].date()
    for old, new in zip(plan_refits(frame, CONFIG, seed=SEED), plan_refits(changed, CONFIG, seed=SEED), strict=True):
        assert (old.refit_key == new.refit_key) == (old.anchor <= cut)
        for day, a, b in zip(old.targets, old.ticket_keys, new.ticket_keys, strict=True):
            assert (a == b) == (day <= cut)


def test_keys_depend_on_seed_settings_and_code(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = replay_keys(frame, config=CONFIG, seed=SEED)
    assert len(keys) == len(set(keys))
    assert not set(keys) & set(replay_keys(frame, config=CONFIG, seed=SEED + 1))
    assert not set(keys) & set(replay_keys(frame, config=replace(CONFIG, n_tickets=50), seed=SEED))
    assert not set(keys) & set(replay_keys(frame, config=replace(CONFIG, window="rolling"), seed=SEED))
    assert set(replay_keys(frame, config=replace(CONFIG, test_draws=5), seed=SEED)) <= set(keys)  # span: no key
    monkeypatch.setattr(replay, "code_version", lambda: "another code version")
    assert not set(keys) & set(replay_keys(frame, config=CONFIG, seed=SEED))


def test_an_unreadable_kept_result_is_computed_again(
    frame: pd.DataFrame,
    previous: BacktestResult,
    fresh: BacktestResult,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = _kept(previous) | _kept(fresh)
    broken = {key: (b"{not json" if i % 3 == 0 else payload) for i, (key, payload) in enumerate(kept.items())}
    with caplog.at_level(logging.WARNING, logger="shiol_lib.analysis.backtest"):
        result = run_backtest(frame, config=CONFIG, seed=SEED, known=broken)
    _assert_same(result, fresh)
    assert "could not be read" in caplog.text and result.computed


def test_kept_bytes_decode_to_what_was_encoded(previous: BacktestResult) -> None:
    for entry in previous.computed:
        if entry.kind == "tickets":
            tickets = replay.decode_tickets(entry.payload, entry.draw_date)
            assert replay.encode_tickets(tickets) == entry.payload
            pd.testing.assert_frame_equal(
                tickets,
                previous.tickets.loc[previous.tickets["draw_date"].dt.date == entry.draw_date].reset_index(drop=True),
            )
        else:
            assert replay.encode_refit(replay.decode_refit(entry.payload)) == entry.payload
