"""The six analysis steps on the real bundled history, in one process, as the notebooks call them."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from analysis_support import real_frame

from shiol_lib.analysis.backtest import run_backtest
from shiol_lib.analysis.evaluation import evaluate_tickets, select_unevaluated, summarize_performance
from shiol_lib.analysis.features import build_feature_tables
from shiol_lib.analysis.model import fit_model, load_model, save_model
from shiol_lib.analysis.signals import run_adaptive_analysis
from shiol_lib.analysis.tickets import generate_tickets
from shiol_lib.analysis.weights import load_weights, optimize_weights, save_weights
from shiol_lib.domain.draw_calendar import draw_after

log = logging.getLogger(__name__)


@pytest.mark.slow
def test_six_steps_on_the_real_history(tmp_path: Path) -> None:
    frame = real_frame()
    target = draw_after(frame["draw_date"].iloc[-1].date())
    assert target == date(2024, 7, 1)

    tables = build_feature_tables(frame)  # 1. features
    assert tables["white"]["draw_date"].max() == pd.Timestamp("2024-06-29")

    analysis = run_adaptive_analysis(frame, target_date=target)  # 2. adaptive analysis
    assert not analysis.drift_tests.empty and not analysis.signal_summary.empty

    weights = optimize_weights(frame, target_date=target, seed=0)  # 3. weights
    assert weights.objective >= weights.start_objective and weights.tune_last == date(2024, 6, 29)

    backtest = run_backtest(frame, seed=0)  # 4. walk-forward backtest (defaults: 52 drawings, refit every 13)
    log.info("backtest took %.1f s", backtest.seconds)
    assert len(backtest.per_draw) == 52  # its speed is measured in bench/run.py, never asserted here

    model = fit_model(frame, target_date=target, seed=0)  # 5. 100 tickets for 2024-07-01
    tickets = generate_tickets(frame, model, weights, target, n=100, seed=0)
    assert len(tickets) == 100 and (tickets["draw_date"] == pd.Timestamp(target)).all()
    assert not tickets.duplicated(subset=["n1", "n2", "n3", "n4", "n5", "pb"]).any()
    reloaded_model = load_model(save_model(model, tmp_path / "model"), frame)
    reloaded_weights = load_weights(save_weights(weights, tmp_path / "weights.json"), frame)
    pd.testing.assert_frame_equal(tickets, generate_tickets(frame, reloaded_model, reloaded_weights, target, 100, 0))
    assert evaluate_tickets(tickets, frame).empty  # its drawing is not known yet
    assert select_unevaluated(tickets, frame, pd.DataFrame(columns=["ticket_key", "draw_hash"])).empty

    summary = summarize_performance(backtest.evaluations, alpha=0.01)  # 6. performance vs the exact baseline
    log.info("%s", summary.conclusion)
    assert not summary.edge, summary.conclusion
    assert summary.conclusion.startswith("No evidence of an edge over random tickets")
    assert summary.white_ci[0] < 25 / 69  # no significant excess of matches
