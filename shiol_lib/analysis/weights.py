"""Step 3: optimize the ticket scorer's weights on a walk-forward objective, and persist them.

Objective. Take the last ``tune_draws`` drawings before the target (the tuning drawings). One model is
fitted on targets dated before the first tuning drawing, so none of them is in its training data; for each
tuning drawing it predicts probabilities from the drawings before that one, and a candidate pool is
sampled with a fixed seed (common random numbers, so the objective is a deterministic function of the
weights). For given weights the greedy selection of :mod:`shiol_lib.analysis.scoring` picks the tickets; the
objective is the *smoothed* expected white-ball matches per ticket against the actual tuning drawing: at
each greedy step, the softmax(score / temperature)-weighted mean of the candidates' matches. It moves
whenever the weights move the scores, unlike the hard selection's step function.

Optimizer: Nelder-Mead (derivative-free; scipy) on the weight direction, started at ``config.start``
with a wide initial simplex and a fixed evaluation budget. The best point evaluated is kept, so the result
is never worse than the start on this objective. The objective is in-sample for these drawings: the
walk-forward backtest (:mod:`shiol_lib.analysis.backtest`) re-optimizes before each refit, so the reported
performance never uses weights tuned on the drawings it is scored on.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from shiol_lib.analysis.model import ModelConfig, NumberModel, check_model_target, fit_model, predict_probabilities
from shiol_lib.analysis.scoring import (
    SOFT_TEMPERATURE,
    CandidatePool,
    Weights,
    build_shape_profile,
    greedy_select,
    sample_pool,
)
from shiol_lib.domain.history import (
    WHITE_COLUMNS,
    check_artefact_data,
    data_hash,
    era_history,
    frame_before,
    next_target,
)
from shiol_lib.errors import ArtefactError, ArtefactMismatchError, InsufficientHistoryError

log = logging.getLogger(__name__)
WEIGHTS_FORMAT = "shiol-ticket-weights/1"
METHOD = "Nelder-Mead on the weight direction; smoothed walk-forward expected white matches"


@dataclass(frozen=True)
class WeightConfig:
    """How the weights are tuned."""

    tune_draws: int = 20  # the last drawings before the target used by the objective
    n_tickets: int = 100  # tickets selected per tuning drawing (as in production)
    pool_size: int = 1000  # candidates sampled per tuning drawing
    start: Weights = field(default_factory=Weights)
    max_evaluations: int = 40
    temperature: float = SOFT_TEMPERATURE


@dataclass(frozen=True)
class OptimizedWeights:
    """Optimized scorer weights with the data and window they were tuned on."""

    weights: Weights
    start: Weights
    objective: float
    start_objective: float
    evaluations: int
    tune_first: date
    tune_last: date
    data_hash: str
    data_last_date: date
    seed: int
    method: str = METHOD

    def as_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "format": WEIGHTS_FORMAT,
            "weights": asdict(self.weights),
            "start": asdict(self.start),
            "objective": self.objective,
            "start_objective": self.start_objective,
            "evaluations": self.evaluations,
            "tune_first": self.tune_first.isoformat(),
            "tune_last": self.tune_last.isoformat(),
            "data_hash": self.data_hash,
            "data_last_date": self.data_last_date.isoformat(),
            "seed": self.seed,
            "method": self.method,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OptimizedWeights:
        """Inverse of :meth:`as_json`."""
        return cls(
            weights=Weights(**data["weights"]),
            start=Weights(**data["start"]),
            objective=float(data["objective"]),
            start_objective=float(data["start_objective"]),
            evaluations=int(data["evaluations"]),
            tune_first=date.fromisoformat(data["tune_first"]),
            tune_last=date.fromisoformat(data["tune_last"]),
            data_hash=data["data_hash"],
            data_last_date=date.fromisoformat(data["data_last_date"]),
            seed=int(data["seed"]),
            method=data["method"],
        )


@dataclass(frozen=True)
class TuningSet:
    """Candidate pools and their white matches for each tuning drawing."""

    dates: list[date]
    pools: list[CandidatePool]
    matches: list[np.ndarray]


def _tuning_rows(
    history: pd.DataFrame, target_date: date, config: WeightConfig, model_config: ModelConfig
) -> pd.DataFrame:
    """The tuning drawings of ``target_date``: the last ``config.tune_draws`` of its era before it."""
    matrix, era = era_history(history, target_date)
    warmup = model_config.features.required_history + model_config.min_train_targets
    needed = warmup + config.tune_draws
    if len(era) < needed or config.tune_draws < 1:
        raise InsufficientHistoryError(
            f"weights for {target_date.isoformat()}: the {matrix.name} era has {len(era)} earlier drawing(s), "
            f"{needed} needed ({model_config.features.required_history} feature warm-up + "
            f"{model_config.min_train_targets} training targets + {config.tune_draws} tuning drawings)",
            available=len(era),
            needed=needed,
        )
    return era.iloc[-config.tune_draws :]


def tuning_start(frame: pd.DataFrame, target_date: date, *, config: WeightConfig, model_config: ModelConfig) -> date:
    """The first tuning drawing of ``target_date``: the target the tuning model is fitted for."""
    rows = _tuning_rows(frame_before(frame, target_date), target_date, config, model_config)
    return rows["draw_date"].iloc[0].date()


def _check_tuning_model(
    model: NumberModel, history: pd.DataFrame, first: date, model_config: ModelConfig, seed: int
) -> None:
    """Refuse a given tuning model unless it is the one :func:`fit_model` makes for ``first``."""
    last_before = frame_before(history, first)["draw_date"].iloc[-1].date()
    meta = model.meta
    if meta.data_last_date != last_before or meta.config != model_config or meta.seed != seed:
        raise ArtefactMismatchError(
            f"the tuning model for {first.isoformat()} must be fitted for that drawing (on draws up to "
            f"{last_before.isoformat()}) with the tuning settings and seed {seed}; the one given was fitted on draws "
            f"up to {meta.data_last_date.isoformat()} with seed {meta.seed}"
            + ("" if meta.config == model_config else " and other model settings")
        )
    check_model_target(model, history, first)  # the same draws (hash) and era


def build_tuning_set(
    frame: pd.DataFrame,
    target_date: date,
    *,
    config: WeightConfig = WeightConfig(),
    model_config: ModelConfig = ModelConfig(),
    seed: int = 0,
    model: NumberModel | None = None,
) -> TuningSet:
    """Pools for the last ``config.tune_draws`` drawings before ``target_date`` (see the module doc).

    ``model``: the tuning model when the caller has already fitted it (``fit_model`` for
    :func:`tuning_start` with ``model_config`` and ``seed``); refused if it is another one.
    """
    history = frame_before(frame, target_date)
    tune = _tuning_rows(history, target_date, config, model_config)
    tune_dates = [d.date() for d in tune["draw_date"]]
    if model is None:
        model = fit_model(history, target_date=tune_dates[0], config=model_config, seed=seed)
    else:
        _check_tuning_model(model, history, tune_dates[0], model_config, seed)
    pools, matches = [], []
    for day, row in zip(tune_dates, tune[WHITE_COLUMNS].to_numpy(), strict=True):
        probs = predict_probabilities(model, history, day)
        rng = np.random.default_rng([seed, day.toordinal()])
        pool = sample_pool(probs, build_shape_profile(history, day), config.pool_size, rng)
        pools.append(pool)
        matches.append(np.isin(pool.whites, row).sum(axis=1).astype(float))
    return TuningSet(tune_dates, pools, matches)


def weight_objective(
    weights: Weights, tuning: TuningSet, *, n_tickets: int = 100, temperature: float = SOFT_TEMPERATURE
) -> float:
    """Smoothed expected white matches per ticket over the tuning drawings (higher is better)."""
    values = [
        greedy_select(pool, weights, min(n_tickets, len(pool)), matches=m, temperature=temperature)[1]
        for pool, m in zip(tuning.pools, tuning.matches)
    ]
    return float(np.mean(values))


def optimize_weights(
    frame: pd.DataFrame,
    *,
    target_date: date | None = None,
    config: WeightConfig = WeightConfig(),
    model_config: ModelConfig = ModelConfig(),
    seed: int = 0,
    tuning_model: NumberModel | None = None,
) -> OptimizedWeights:
    """Step 3: weights for ``target_date`` (default: the drawing after the last) tuned on earlier drawings.

    ``tuning_model``: the tuning set's model when the caller already has it (see :func:`build_tuning_set`).
    """
    if target_date is None:
        target_date = next_target(frame)
    history = frame_before(frame, target_date)
    tuning = build_tuning_set(
        history, target_date, config=config, model_config=model_config, seed=seed, model=tuning_model
    )
    seen: dict[tuple[float, ...], float] = {}

    def loss(vector: np.ndarray) -> float:
        if not np.all(np.isfinite(vector)) or np.linalg.norm(vector) < 1e-9:
            return np.inf
        weights = Weights.from_vector(vector)
        key = tuple(np.round(weights.vector(), 12))
        if key not in seen:
            seen[key] = -weight_objective(weights, tuning, n_tickets=config.n_tickets, temperature=config.temperature)
        return seen[key]

    start = config.start.vector()
    start_loss = loss(start)
    simplex = np.vstack([start, *(start + 0.6 * np.eye(3)[i] for i in range(3))])
    result = minimize(
        loss,
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxfev": config.max_evaluations, "xatol": 1e-3, "fatol": 1e-6},
    )
    best = Weights.from_vector(result.x) if result.fun <= start_loss else Weights.from_vector(start)
    best_loss = min(result.fun, start_loss)
    log.info(
        "weights for %s: %s (objective %.4f, start %.4f, %d evaluations)",
        target_date,
        best,
        -best_loss,
        -start_loss,
        len(seen),
    )
    return OptimizedWeights(
        weights=best,
        start=config.start,
        objective=-float(best_loss),
        start_objective=-float(start_loss),
        evaluations=len(seen),
        tune_first=tuning.dates[0],
        tune_last=tuning.dates[-1],
        data_hash=data_hash(history),
        data_last_date=history["draw_date"].iloc[-1].date(),
        seed=seed,
    )


def check_weights_target(weights: OptimizedWeights, frame: pd.DataFrame, target_date: date) -> None:
    """Refuse weights tuned on other draws, or on drawings dated on or after ``target_date``."""
    if target_date <= weights.data_last_date:
        raise ArtefactMismatchError(
            f"weights were tuned on draws up to {weights.data_last_date.isoformat()} and cannot be used for the "
            f"earlier or same drawing {target_date.isoformat()}"
        )
    check_artefact_data(frame, stored_hash=weights.data_hash, last_date=weights.data_last_date, what="weights")


def save_weights(weights: OptimizedWeights, path: Path) -> Path:
    """Write the weights and their provenance as JSON (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(weights.as_json(), indent=2))
    os.replace(tmp, path)
    return path


def load_weights(path: Path, frame: pd.DataFrame) -> OptimizedWeights:
    """Read weights saved by :func:`save_weights`, refusing them unless tuned on ``frame``'s draws."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ArtefactError(f"no readable weights file at {path}: {err}") from err
    if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT:
        raise ArtefactError(f"{path} is not a {WEIGHTS_FORMAT} file")
    weights = OptimizedWeights.from_json(data)
    check_artefact_data(
        frame, stored_hash=weights.data_hash, last_date=weights.data_last_date, what="weights", path=path
    )
    return weights
