"""The evaluation job and the performance step read and write evaluations in the store, with the figures the
Python evaluation gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiol_lib import steps
from shiol_lib.analysis.evaluation import PerformanceSummary, evaluate_tickets, summarize_performance
from shiol_lib.domain.draws import Draw
from shiol_lib.domain.game import CURRENT_MATRIX
from shiol_lib.store import predictions as prediction_table

FETCHED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WHITES = ["n1", "n2", "n3", "n4", "n5"]


@pytest.fixture
def db_path(tmp_path: Path, bundled_draws: list[Draw]) -> str:
    """A store with the bundled draws, 12 runs of 100 random tickets (10 on known current drawings, one on an
    old-era drawing, one on a future drawing) and a small ``backtest_tickets`` artefact of run ``r``."""
    path = str(tmp_path / "shiol.duckdb")
    store = steps.open_step_store(path)
    store.apply_draws(bundled_draws, source="bundled", fetched_at=FETCHED)
    frame = store.read_draws()
    rng = np.random.default_rng(8)
    days = [
        *frame["draw_date"].iloc[-10:].dt.date,
        frame["draw_date"].iloc[100].date(),
        pd.Timestamp("2024-07-01").date(),
    ]
    for i, day in enumerate(days):
        whites = np.sort(np.argsort(rng.random((100, 69)), axis=1)[:, :5] + 1, axis=1)
        tickets = pd.DataFrame(whites, columns=WHITES).assign(pb=rng.integers(1, 27, 100), score=0.0)
        tickets.insert(0, "rank", np.arange(1, 101))
        prediction_table.replace_predictions(store, f"run-{i:02d}", day, tickets)
    backtest = frame.iloc[-5:][["draw_date", *WHITES, "pb"]].assign(rank=1, score=0.0)
    backtest["draw_date"] = backtest["draw_date"].dt.strftime("%Y-%m-%d")
    prediction_table.save_artifact(
        store, "r", "backtest_tickets", backtest[["draw_date", "rank", *WHITES, "pb", "score"]].values.tolist()
    )
    return path


def _python_live(db_path: str, history_end: str = "") -> pd.DataFrame:
    """What step 6 computed before the store evaluated: every current-era ticket evaluated in Python."""
    store = steps.open_step_store(db_path)
    frame = steps.load_history(store, history_end)
    tickets = prediction_table.read_predictions(store).rename(columns={"target_draw_date": "draw_date"})
    return evaluate_tickets(tickets.loc[tickets["draw_date"] >= pd.Timestamp(CURRENT_MATRIX.first_date)], frame)


def _assert_same_figures(found: PerformanceSummary, expected: PerformanceSummary) -> None:
    assert found.as_dict() == expected.as_dict()
    pd.testing.assert_frame_equal(found.per_draw, expected.per_draw)


@pytest.mark.parametrize("evaluated_first", [True, False])
def test_performance_reads_the_stored_evaluations_with_the_same_figures(db_path: str, evaluated_first: bool) -> None:
    if evaluated_first:
        assert len(steps.evaluate_predictions(db_path)) == 1100  # not the future run
    performance = steps.analyze_performance(db_path, run_id="r", history_end="")
    expected = summarize_performance(_python_live(db_path))
    assert performance.live_tickets == 1000 and performance.live is not None
    _assert_same_figures(performance.live, expected)
    earlier = steps.analyze_performance(db_path, run_id="r", history_end="2024-06-22")
    assert earlier.live is not None and earlier.live_tickets == len(_python_live(db_path, "2024-06-22")) < 1000
    _assert_same_figures(earlier.live, summarize_performance(_python_live(db_path, "2024-06-22")))


def test_the_evaluation_job_evaluates_pending_tickets_once(db_path: str) -> None:
    first = steps.evaluate_predictions(db_path)
    assert len(first) == 1100 and first["target_draw_date"].max() < pd.Timestamp("2024-07-01")
    assert steps.evaluate_predictions(db_path).empty
    stored = prediction_table.read_evaluations(steps.open_step_store(db_path))
    assert len(stored) == 1100 and not stored.duplicated(subset=["run_id", "rank"]).any()


def test_validation_reuses_the_previous_runs_replays_with_the_outputs_of_a_fresh_store(tmp_path: Path) -> None:
    """Step 4 after the previous drawing's run computes only the new drawing; its outputs equal a fresh store's."""
    from shiol_lib.store import predictions as replay_table

    def validate(path: str, run_id: str, history_end: str) -> tuple[int, dict[str, str]]:
        result = steps.validate_history(path, run_id=run_id, history_end=history_end, seed=11, test_draws=3)
        return result.reused_targets, prediction_table.output_hashes(steps.open_step_store(path), run_id)

    warm, fresh = str(tmp_path / "warm.duckdb"), str(tmp_path / "fresh.duckdb")
    for path in (warm, fresh):
        steps.update_data(path, offline=True, run_id="seed")
    days = steps.open_step_store(warm).read_draws()["draw_date"].dt.strftime("%Y-%m-%d").tolist()
    assert validate(warm, "previous", days[-2])[0] == 0
    kept = replay_table.count_replays(steps.open_step_store(warm))
    assert kept["tickets"] == 3 and kept["refit"] >= 1
    reused, hashes = validate(warm, "next", days[-1])
    assert reused == 2 and replay_table.count_replays(steps.open_step_store(warm))["tickets"] == 4
    assert validate(fresh, "next", days[-1]) == (0, hashes)
    assert validate(warm, "again", days[-1]) == (3, hashes)  # a rerun: everything kept, the same outputs
