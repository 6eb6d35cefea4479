"""Step 4: walk-forward backtest of the whole ticket pipeline over the history (never a random split).

For each target drawing of the test span (the last ``test_draws`` drawings), the draws are cut strictly
before the target and everything is built from that cut alone: every ``refit_every`` targets the model
is refitted and the weights re-optimized (their own tuning drawings also lie before the target), then
tickets are generated and evaluated against the target. Window: ``expanding`` (all earlier targets of the
era) or ``rolling`` (the most recent ``rolling_targets``).

A model is fitted once per target date: when ``refit_every`` divides the weights' ``tune_draws``, a refit's
tuning model (fitted for its first tuning drawing) is an earlier refit's model, and is reused as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal, cast, get_args

import numpy as np
import pandas as pd

from shiol_lib.analysis.evaluation import evaluate_tickets, summarize_draws
from shiol_lib.analysis.model import ModelConfig, NumberModel, fit_model
from shiol_lib.analysis.scoring import Weights
from shiol_lib.analysis.tickets import DEFAULT_TICKETS, generate_tickets
from shiol_lib.analysis.weights import OptimizedWeights, WeightConfig, optimize_weights, tuning_start
from shiol_lib.domain.game import matrix_for
from shiol_lib.domain.history import check_draw_frame, frame_before
from shiol_lib.errors import InsufficientHistoryError

log = logging.getLogger(__name__)

Window = Literal["expanding", "rolling"]


def backtest_window(value: str) -> Window:
    """``value`` as a backtest window; raises ``ValueError`` naming it unless ``expanding`` or ``rolling``."""
    if value not in get_args(Window):
        raise ValueError(f"window must be 'expanding' or 'rolling', not {value!r}")
    return cast(Window, value)


@dataclass(frozen=True)
class BacktestConfig:
    """Span, refit cadence, window and the model / weight settings of a backtest."""

    test_draws: int = 52  # the last drawings of the history, each predicted walk-forward
    refit_every: int = 13  # refit the model and re-optimize the weights every k targets
    window: Window = "expanding"
    rolling_targets: int = 300  # training targets kept when window == "rolling"
    n_tickets: int = DEFAULT_TICKETS
    optimize: bool = True  # False: use weights.start as they are (no tuning)
    model: ModelConfig = field(default_factory=ModelConfig)
    weights: WeightConfig = field(default_factory=WeightConfig)

    def model_config(self) -> ModelConfig:
        """The model settings with the window applied."""
        if self.window == "rolling":
            return replace(self.model, train_window=self.rolling_targets)
        if self.window != "expanding":
            raise ValueError(f"window must be 'expanding' or 'rolling', not {self.window!r}")
        return self.model


@dataclass(frozen=True)
class BacktestResult:
    """Tickets, their evaluations, one row per drawing, and one row per refit."""

    tickets: pd.DataFrame
    evaluations: pd.DataFrame
    per_draw: pd.DataFrame
    refits: pd.DataFrame
    seconds: float


def ticket_seed(seed: int, ordinal: int) -> int:
    """The ticket seed of one target, derived from the run seed and the target's date ordinal."""
    return int(np.random.SeedSequence([seed, ordinal]).generate_state(1)[0])


def _test_targets(checked: pd.DataFrame, test_draws: int) -> list[date]:
    if test_draws < 1:
        raise ValueError(f"test_draws must be at least 1, got {test_draws}")
    if len(checked) < test_draws:
        raise InsufficientHistoryError(
            f"backtest over {test_draws} drawings asked, the history has {len(checked)}",
            available=len(checked), needed=test_draws,
        )
    targets = [d.date() for d in checked["draw_date"].iloc[-test_draws:]]
    matrix = matrix_for(targets[-1])
    if targets[0] < matrix.first_date:
        era_count = int((checked["draw_date"].dt.date >= matrix.first_date).sum())
        raise InsufficientHistoryError(
            f"the test span of {test_draws} drawings crosses into the {matrix.name} era, which has only "
            f"{era_count} drawings; choose test_draws well below that", available=era_count, needed=test_draws,
        )
    return targets


def run_backtest(frame: pd.DataFrame, *, config: BacktestConfig = BacktestConfig(), seed: int = 0) -> BacktestResult:
    """Step 4: walk-forward backtest of the last ``config.test_draws`` drawings (see the module doc)."""
    started = time.perf_counter()
    checked = check_draw_frame(frame)
    targets = _test_targets(checked, config.test_draws)
    model_config = config.model_config()
    tickets, refits = [], []
    model: NumberModel | None = None
    weights: OptimizedWeights | Weights = config.weights.start
    fitted: dict[date, NumberModel] = {}

    def model_for(day: date) -> NumberModel:
        """The model for ``day``, fitted once: a refit's tuning model can be an earlier refit's model."""
        if day not in fitted:
            fitted[day] = fit_model(checked, target_date=day, config=model_config, seed=seed)
        return fitted[day]

    for i, target in enumerate(targets):
        history = frame_before(checked, target)
        if i % config.refit_every == 0:
            model = model_for(target)
            if config.optimize:
                first = tuning_start(history, target, config=config.weights, model_config=model_config)
                weights = optimize_weights(history, target_date=target, config=config.weights,
                                           model_config=model_config, seed=seed, tuning_model=model_for(first))
            refits.append(_refit_row(target, model, weights))
        assert model is not None  # fitted at i == 0
        tickets.append(generate_tickets(history, model, weights, target, config.n_tickets,
                                        seed=ticket_seed(seed, target.toordinal())))
        log.debug("backtest target %s done (%d/%d)", target, i + 1, len(targets))
    all_tickets = pd.concat(tickets, ignore_index=True)
    evaluations = evaluate_tickets(all_tickets, checked)
    seconds = time.perf_counter() - started
    log.info("backtest of %d drawings (%s..%s) in %.1f s", len(targets), targets[0], targets[-1], seconds)
    return BacktestResult(all_tickets, evaluations, summarize_draws(evaluations), pd.DataFrame(refits), seconds)


def _refit_row(target: date, model: NumberModel, weights: OptimizedWeights | Weights) -> dict[str, object]:
    if isinstance(weights, OptimizedWeights):
        w, objective, start_objective = weights.weights, weights.objective, weights.start_objective
    else:
        w, objective, start_objective = weights, np.nan, np.nan
    meta = model.meta
    return {
        "refit_target": pd.Timestamp(target), "train_first_target": pd.Timestamp(meta.train_first_target),
        "train_last_target": pd.Timestamp(meta.train_last_target), "train_targets": meta.n_train_targets,
        "w_model": w.model, "w_diversity": w.diversity, "w_shape": w.shape,
        "objective": objective, "start_objective": start_objective,
    }
