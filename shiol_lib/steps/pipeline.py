"""The six pipeline steps and the evaluation job as the notebooks call them (re-exported by ``steps``).

Each function is one notebook's work in one call. Inputs are the notebook's parameters; outputs go to
the store keyed by ``run_id`` (tickets, evaluations, artefacts, a small ``metrics.<step>`` record) and
are returned for the notebook to show. Later steps find earlier steps' outputs through the run id.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from shiol_lib.domain.draws import TICKET_COLUMNS
from shiol_lib.domain.game import CURRENT_MATRIX
from shiol_lib.domain.history import data_hash, next_target
from shiol_lib.errors import ArtefactError
from shiol_lib.store import Store, open_store
from shiol_lib.store import evaluations as evaluation_table
from shiol_lib.store import predictions as prediction_table
from shiol_lib.store.core import JOB_PUBLISHES_ENV

if TYPE_CHECKING:  # the analysis stack (scipy, xgboost, sklearn, matplotlib) loads in the step that uses it
    from shiol_lib.analysis.backtest import BacktestResult
    from shiol_lib.analysis.evaluation import PerformanceSummary
    from shiol_lib.analysis.model import NumberModel
    from shiol_lib.analysis.signals import AdaptiveAnalysis
    from shiol_lib.analysis.weights import OptimizedWeights

# What the pipeline steps import when they run: preload() imports them ahead (a warm step kernel).
ANALYSIS_MODULES = (
    "shiol_lib.analysis.backtest",
    "shiol_lib.analysis.evaluation",
    "shiol_lib.analysis.findings",
    "shiol_lib.analysis.model",
    "shiol_lib.analysis.plots",
    "shiol_lib.analysis.signals",
    "shiol_lib.analysis.tickets",
    "shiol_lib.analysis.weights",
    "shiol_lib.ingest.update",
)

log = logging.getLogger(__name__)


def show_findings(markdown: str) -> Any:
    """The findings Markdown as a displayable object (the notebook tags its cell ``findings``)."""
    from IPython.display import Markdown

    return Markdown(markdown)


def open_step_store(db_path: str) -> Store:
    """The store a notebook was given (created and migrated if new).

    In a job's step kernel its writes leave the reader snapshot to the job, which republishes it once
    when the step ends (``JOB_PUBLISHES_ENV``); anywhere else each write republishes it.
    """
    deferred = os.environ.get(JOB_PUBLISHES_ENV) == "1"
    return open_store(Path(db_path).expanduser().resolve(), defer_publish=deferred)


def load_history(store: Store, history_end: str = "") -> pd.DataFrame:
    """The stored draws up to ``history_end`` (ISO date; empty: all of them)."""
    frame = store.read_draws()
    if history_end:
        frame = frame.loc[frame["draw_date"] <= pd.Timestamp(history_end)].reset_index(drop=True)
    return frame


def resolve_target(frame: pd.DataFrame, target_draw_date: str = "") -> date:
    """The given target drawing, or the one after the last drawing of ``frame``."""
    return date.fromisoformat(target_draw_date) if target_draw_date else next_target(frame)


def save_metrics(store: Store, run_id: str, step: str, metrics: dict[str, Any]) -> None:
    """Record a step's key numbers (shown by ``shiol runs show`` and compared by ``shiol runs diff``)."""
    prediction_table.save_artifact(store, run_id, f"metrics.{step}", metrics)


# -- step 2 ------------------------------------------------------------------------------------


def analyze_signals(
    db_path: str, *, run_id: str, history_end: str, target_draw_date: str, recent: int = 50, signal_window: int = 52
) -> AdaptiveAnalysis:
    """Drift of the number distribution and the walk-forward signal of each feature family."""
    from shiol_lib.analysis.signals import run_adaptive_analysis

    store = open_step_store(db_path)
    frame = load_history(store, history_end)
    target = resolve_target(frame, target_draw_date)
    result = run_adaptive_analysis(frame, target_date=target, recent=recent, signal_window=signal_window)
    prediction_table.save_artifact(
        store,
        run_id,
        "adaptive_analysis",
        {
            "drift_tests": result.drift_tests.to_dict("records"),
            "signal_summary": result.signal_summary.to_dict("records"),
        },
        data_hash=data_hash(frame),
    )
    save_metrics(
        store,
        run_id,
        "adaptive_analysis",
        {
            f"drift_p_{row['kind']}": round(float(row["p_value"]), 6)
            for row in result.drift_tests.to_dict("records")
            if "kind" in row
        },
    )
    return result


# -- step 3 ------------------------------------------------------------------------------------


@dataclass
class ScoringArtefacts:
    """Step 3's outputs: the optimized weights and the number model fitted for the target."""

    weights: OptimizedWeights
    model: NumberModel
    target: date


def optimize_scoring(
    db_path: str, *, run_id: str, history_end: str, target_draw_date: str, seed: int, tune_draws: int = 20
) -> ScoringArtefacts:
    """Optimize the ticket scorer's weights and fit the model the generator will use; store both."""
    from shiol_lib.analysis.model import fit_model
    from shiol_lib.analysis.weights import WeightConfig, optimize_weights

    store = open_step_store(db_path)
    frame = load_history(store, history_end)
    target = resolve_target(frame, target_draw_date)
    # The target's model does not depend on the weights: it is fitted on the other core meanwhile
    # (XGBoost lets go of the GIL while it trains; each side trains on one thread).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shiol-fit") as fitter:
        fitting = fitter.submit(fit_model, frame, target_date=target, seed=seed)
        weights = optimize_weights(frame, target_date=target, config=WeightConfig(tune_draws=tune_draws), seed=seed)
        model = fitting.result()
    digest = data_hash(frame)
    prediction_table.save_artifact(store, run_id, "weights", weights.as_json(), data_hash=digest)
    prediction_table.save_artifact(store, run_id, "model", _model_payload(model), data_hash=digest)
    save_metrics(
        store,
        run_id,
        "weight_optimization",
        {
            "objective": round(weights.objective, 9),
            "start_objective": round(weights.start_objective, 9),
            **{f"weight_{k}": round(v, 9) for k, v in asdict(weights.weights).items()},
        },
    )
    return ScoringArtefacts(weights, model, target)


def _model_payload(model: NumberModel) -> dict[str, Any]:
    from shiol_lib.analysis.model import save_model

    with tempfile.TemporaryDirectory() as tmp:
        directory = save_model(model, Path(tmp))
        return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def load_scoring(store: Store, run_id: str, frame: pd.DataFrame) -> tuple[OptimizedWeights, NumberModel]:
    """The weights and model step 3 stored for ``run_id``, checked against ``frame``'s draws."""
    from shiol_lib.analysis.model import load_model
    from shiol_lib.analysis.weights import load_weights

    try:
        weights_json, _ = prediction_table.load_artifact(store, run_id, "weights")
        model_json, _ = prediction_table.load_artifact(store, run_id, "model")
    except LookupError as err:
        raise ArtefactError(f"{err} (step 3, weight optimization, makes the weights and the model)") from err
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "weights.json").write_text(json.dumps(weights_json))
        weights = load_weights(Path(tmp) / "weights.json", frame)
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        for stem, content in model_json.items():
            (model_dir / f"{stem}.json").write_text(json.dumps(content))
        model = load_model(model_dir, frame)
    return weights, model


# -- step 4 ------------------------------------------------------------------------------------


def validate_history(
    db_path: str,
    *,
    run_id: str,
    history_end: str,
    seed: int,
    test_draws: int = 52,
    refit_every: int = 13,
    window: str = "expanding",
    n_tickets: int = 100,
) -> BacktestResult:
    """Walk-forward backtest over the last ``test_draws`` drawings (earlier runs' replays reused); stores it."""
    from shiol_lib.analysis.backtest import BacktestConfig, backtest_window, replay_keys, run_backtest
    from shiol_lib.store.predictions import read_replays, save_replays

    store = open_step_store(db_path)
    frame = load_history(store, history_end)
    config = BacktestConfig(
        test_draws=test_draws,
        refit_every=refit_every,
        window=backtest_window(window),
        n_tickets=n_tickets,
        refit_anchor="era",
    )
    known = read_replays(store, replay_keys(frame, config=config, seed=seed))
    result = run_backtest(frame, config=config, seed=seed, known=known, workers=min(2, os.cpu_count() or 1))
    save_replays(store, ((e.key, e.kind, e.draw_date, e.payload) for e in result.computed))
    tickets = result.tickets[["draw_date", *TICKET_COLUMNS]].copy()
    tickets["draw_date"] = tickets["draw_date"].dt.strftime("%Y-%m-%d")
    tickets["score"] = tickets["score"].round(9)
    prediction_table.save_artifact(
        store, run_id, "backtest_tickets", tickets.to_dict("split")["data"], data_hash=data_hash(frame)
    )
    save_metrics(
        store,
        run_id,
        "historical_validation",
        {
            "drawings": int(len(result.per_draw)),
            "tickets": int(len(result.tickets)),
            "mean_white_matches": round(float(result.evaluations["white_matches"].mean()), 9),
        },
    )
    return result


def load_backtest_tickets(store: Store, run_id: str) -> pd.DataFrame:
    """The walk-forward tickets step 4 stored for ``run_id``."""
    try:
        rows, _ = prediction_table.load_artifact(store, run_id, "backtest_tickets")
    except LookupError as err:
        raise ArtefactError(f"{err} (step 4, historical validation, makes them)") from err
    frame = pd.DataFrame(rows, columns=["draw_date", *TICKET_COLUMNS])
    frame["draw_date"] = pd.to_datetime(frame["draw_date"])
    return frame


# -- step 5 ------------------------------------------------------------------------------------


def generate_predictions(
    db_path: str, *, run_id: str, history_end: str, target_draw_date: str, n_predictions: int, seed: int
) -> pd.DataFrame:
    """``n_predictions`` ranked tickets for the target from step 3's model and weights; stored by run."""
    from shiol_lib.analysis.tickets import generate_tickets

    store = open_step_store(db_path)
    frame = load_history(store, history_end)
    target = resolve_target(frame, target_draw_date)
    weights, model = load_scoring(store, run_id, frame)
    tickets = generate_tickets(frame, model, weights, target, n=n_predictions, seed=seed)
    prediction_table.replace_predictions(store, run_id, target, tickets[TICKET_COLUMNS])
    save_metrics(
        store,
        run_id,
        "generate_predictions",
        {
            "tickets": int(len(tickets)),
            "target_draw_date": target.isoformat(),
            "top_score": round(float(tickets["score"].iloc[0]), 9),
        },
    )
    return tickets


# -- step 6 ------------------------------------------------------------------------------------


@dataclass
class Performance:
    """Step 6: the walk-forward backtest and the live predictions, each against the exact baseline."""

    backtest: PerformanceSummary
    live: PerformanceSummary | None
    live_tickets: int


def analyze_performance(db_path: str, *, run_id: str, history_end: str, alpha: float = 0.01) -> Performance:
    """Evaluate step 4's tickets and every evaluated live prediction against the exact baseline."""
    from shiol_lib.analysis.evaluation import evaluate_tickets, summarize_performance

    store = open_step_store(db_path)
    frame = load_history(store, history_end)
    backtest = summarize_performance(evaluate_tickets(load_backtest_tickets(store, run_id), frame), alpha=alpha)
    live_rows = _live_evaluations(store, history_end)
    live = summarize_performance(live_rows, alpha=alpha) if len(live_rows) else None
    save_metrics(
        store,
        run_id,
        "performance_analysis",
        {
            "backtest_p_value": round(float(backtest.white_test.p_value), 9),
            "backtest_edge": bool(backtest.edge),
            "backtest_white_mean": round(backtest.white_mean, 9),
            "backtest_white_expected": round(backtest.white_expected, 9),
            "backtest_white_ci": [round(backtest.white_ci[0], 9), round(backtest.white_ci[1], 9)],
            "backtest_draws": int(backtest.n_draws),
            "backtest_prize_per_dollar": round(backtest.prize_per_dollar, 9),
            "backtest_prize_per_dollar_expected": round(backtest.prize_per_dollar_expected, 9),
            "conclusion": backtest.conclusion,
            "live_tickets": int(len(live_rows)),
            "live_p_value": round(float(live.white_test.p_value), 9) if live else None,
        },
    )
    return Performance(backtest, live, int(len(live_rows)))


def _live_evaluations(store: Store, history_end: str) -> pd.DataFrame:
    """The stored predictions of the current matrix whose drawing is known, as evaluated in the store.

    Up to ``history_end``: the evaluations table, plus any ticket still pending scored by the same query.
    """
    last = date.fromisoformat(history_end) if history_end else None
    rows = evaluation_table.read_current_evaluations(store, first_date=CURRENT_MATRIX.first_date, last_date=last)
    return rows.rename(columns={"target_draw_date": "draw_date"})


# -- evaluation job ------------------------------------------------------------------------------


def evaluate_predictions(db_path: str) -> pd.DataFrame:
    """Evaluate every stored ticket whose drawing is known and that is pending; return the new evaluations.

    Pending: never evaluated, or evaluated against a drawing since corrected (one store query over those
    tickets only).
    """
    store = open_step_store(db_path)
    rows = evaluation_table.evaluate_pending(store)
    log.info("evaluated %d ticket(s) at %s", len(rows), datetime.now(UTC).isoformat())
    return rows


def planted_bias_check(
    *,
    seed: int,
    n_draws: int = 400,
    bias: float = 3.0,
    biased_whites: tuple[int, ...] = (3, 11, 19, 27, 35, 43, 51, 59),
    alpha: float = 0.01,
) -> dict[str, PerformanceSummary]:
    """Run the same walk-forward validation and test on a planted-bias and a fair synthetic history.

    A sound pipeline finds the planted edge and does not find one in the fair history.
    """
    from shiol_lib.analysis.backtest import BacktestConfig, run_backtest
    from shiol_lib.analysis.evaluation import summarize_performance
    from shiol_lib.analysis.model import ModelConfig
    from shiol_lib.analysis.research.synthetic import generate_synthetic_draws
    from shiol_lib.analysis.weights import WeightConfig

    config = BacktestConfig(
        test_draws=52,
        refit_every=26,
        model=ModelConfig(n_estimators=60),
        weights=WeightConfig(tune_draws=12, max_evaluations=15),
    )
    out = {}
    for name, frame in (
        ("planted", generate_synthetic_draws(n_draws, seed=seed, biased_whites=biased_whites, bias=bias)),
        ("fair", generate_synthetic_draws(n_draws, seed=seed + 1)),
    ):
        out[name] = summarize_performance(run_backtest(frame, config=config, seed=seed).evaluations, alpha=alpha)
    return out


def preload() -> None:
    """Import what the pipeline steps use (a step kernel runs this before its first cell)."""
    for name in ANALYSIS_MODULES:
        importlib.import_module(name)
