"""XGBoost per-number probabilities for a target drawing, white balls and Powerball apart.

The model of a target is trained on the feature tables of earlier target drawings of its era only (every
training target is dated before the prediction target, and the draws handed to the fit are cut there),
so nothing about the target or later drawings can reach it. Artefacts are XGBoost's own JSON plus a small
JSON metadata file (no pickle); they carry the hash of the draws they were trained on and are refused for
other draws.
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
import xgboost as xgb
from scipy.optimize import brentq
from scipy.special import expit, logit

from shiol_lib.analysis.features import (
    KINDS,
    FeatureConfig,
    Kind,
    build_target_features,
    build_training_table,
    feature_names,
)
from shiol_lib.domain.game import WHITE_COUNT, Matrix, matrix_for
from shiol_lib.domain.history import check_artefact_data, data_hash, frame_before, next_target
from shiol_lib.errors import ArtefactError, ArtefactMismatchError, InsufficientHistoryError

__all__ = [
    "ModelConfig",
    "NumberModel",
    "NumberProbabilities",
    "data_hash",
    "fit_model",
    "load_model",
    "predict_probabilities",
    "save_model",
]

log = logging.getLogger(__name__)
MODEL_FORMAT = "shiol-number-model/1"
_PROB_FLOOR = 1e-6


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the per-number classifiers and of their training window."""

    n_estimators: int = 150
    max_depth: int = 3
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    n_jobs: int = 1  # XGBoost threads (<= 2); measured: 2 threads are slower than 1 at this data size
    train_window: int | None = None  # most recent training targets kept (rolling); None = expanding
    min_train_targets: int = 50
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def xgb_params(self, seed: int) -> dict[str, Any]:
        """The ``xgb.train`` parameters (CPU ``hist``, seeded, deterministic)."""
        return {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "nthread": self.n_jobs,
            "seed": seed,
        }

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for metadata)."""
        return {**asdict(self), "features": self.features.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`as_dict`."""
        return cls(**{**data, "features": FeatureConfig.from_dict(data["features"])})


@dataclass(frozen=True)
class ModelMeta:
    """What a model was trained on: draws (hash, last date), era, targets, seed, features."""

    seed: int
    data_hash: str
    data_last_date: date
    era: str
    train_first_target: date
    train_last_target: date
    n_train_targets: int
    config: ModelConfig
    feature_names: dict[str, list[str]]

    def as_json(self) -> dict[str, Any]:
        """JSON metadata written beside the boosters."""
        return {
            "format": MODEL_FORMAT,
            "seed": self.seed,
            "data_hash": self.data_hash,
            "data_last_date": self.data_last_date.isoformat(),
            "era": self.era,
            "train_first_target": self.train_first_target.isoformat(),
            "train_last_target": self.train_last_target.isoformat(),
            "n_train_targets": self.n_train_targets,
            "config": self.config.as_dict(),
            "feature_names": self.feature_names,
            "xgboost_version": xgb.__version__,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        """Inverse of :meth:`as_json`."""
        return cls(
            seed=int(data["seed"]),
            data_hash=data["data_hash"],
            data_last_date=date.fromisoformat(data["data_last_date"]),
            era=data["era"],
            train_first_target=date.fromisoformat(data["train_first_target"]),
            train_last_target=date.fromisoformat(data["train_last_target"]),
            n_train_targets=int(data["n_train_targets"]),
            config=ModelConfig.from_dict(data["config"]),
            feature_names={k: list(v) for k, v in data["feature_names"].items()},
        )


@dataclass
class NumberModel:
    """The white-ball and Powerball boosters with their metadata."""

    boosters: dict[Kind, xgb.Booster]
    meta: ModelMeta


@dataclass(frozen=True)
class NumberProbabilities:
    """Per-number probabilities for one target: whites sum to 5, Powerballs to 1, each in (0, 1)."""

    target_date: date
    matrix: Matrix
    white: pd.Series  # index: numbers 1..white_max
    pb: pd.Series  # index: numbers 1..pb_max

    @classmethod
    def uniform(cls, target_date: date) -> NumberProbabilities:
        """The exact random baseline: every white 5/white_max, every Powerball 1/pb_max."""
        matrix = matrix_for(target_date)
        white = pd.Series(WHITE_COUNT / matrix.white_max, index=np.arange(1, matrix.white_max + 1))
        pb = pd.Series(1.0 / matrix.pb_max, index=np.arange(1, matrix.pb_max + 1))
        return cls(target_date, matrix, white.rename_axis("number"), pb.rename_axis("number"))


def _training_target_table(history: pd.DataFrame, kind: Kind, config: ModelConfig, target: date) -> pd.DataFrame:
    table = build_training_table(history, kind, config.features, until=target)
    dates = table["draw_date"].drop_duplicates()
    if config.train_window is not None and len(dates) > config.train_window:
        table = table.loc[table["draw_date"] >= dates.iloc[-config.train_window]]
        dates = dates.iloc[-config.train_window :]
    if len(dates) < config.min_train_targets:
        raise InsufficientHistoryError(
            f"model for {target.isoformat()}: {len(dates)} training target(s) in the {matrix_for(target).name} era "
            f"after the {config.features.required_history}-drawing feature warm-up, {config.min_train_targets} needed",
            available=len(dates),
            needed=config.min_train_targets,
        )
    return table


def fit_model(
    frame: pd.DataFrame, *, target_date: date | None = None, config: ModelConfig = ModelConfig(), seed: int = 0
) -> NumberModel:
    """Train white-ball and Powerball classifiers for ``target_date`` (default: the drawing after the last).

    Only drawings dated strictly before ``target_date`` are used (the frame is cut first), and the training
    targets are those of the target's era with a full feature warm-up. Deterministic for a given seed.
    """
    if target_date is None:
        target_date = next_target(frame)
    matrix = matrix_for(target_date)
    history = frame_before(frame, target_date)
    tables = {kind: _training_target_table(history, kind, config, target_date) for kind in KINDS}
    boosters = {}
    for kind, table in tables.items():
        names = feature_names(kind, config.features)
        matrix_x = xgb.DMatrix(
            table[names].to_numpy(), label=table["label"].to_numpy(), feature_names=names, nthread=config.n_jobs
        )
        boosters[kind] = xgb.train(config.xgb_params(seed), matrix_x, num_boost_round=config.n_estimators)
    target_dates = tables["white"]["draw_date"]
    meta = ModelMeta(
        seed=seed,
        data_hash=data_hash(history),
        data_last_date=history["draw_date"].iloc[-1].date(),
        era=matrix.name,
        train_first_target=target_dates.iloc[0].date(),
        train_last_target=target_dates.iloc[-1].date(),
        n_train_targets=int(target_dates.nunique()),
        config=config,
        feature_names={k: feature_names(k, config.features) for k in KINDS},
    )
    log.info(
        "fitted model for %s on %d targets (%s..%s)",
        target_date,
        meta.n_train_targets,
        meta.train_first_target,
        meta.train_last_target,
    )
    return NumberModel(boosters, meta)


def check_model_target(model: NumberModel, frame: pd.DataFrame, target_date: date) -> None:
    """Refuse a model built from other draws, another era, or trained on drawings from ``target_date`` on."""
    meta = model.meta
    if target_date <= meta.data_last_date:
        raise ArtefactMismatchError(
            f"model was trained on draws up to {meta.data_last_date.isoformat()} and cannot predict the earlier "
            f"or same drawing {target_date.isoformat()}; fit one with target_date={target_date.isoformat()}"
        )
    check_artefact_data(frame, stored_hash=meta.data_hash, last_date=meta.data_last_date, what="model")
    era = matrix_for(target_date).name
    if era != meta.era:
        raise ArtefactMismatchError(f"model was trained for the {meta.era} era, target {target_date} is in {era}")


def _scale_to_total(raw: np.ndarray, total: float) -> np.ndarray:
    """Shift logits by one constant so the probabilities sum to ``total`` and stay inside (0, 1)."""
    logits = logit(np.clip(raw, _PROB_FLOOR, 1 - _PROB_FLOOR))
    shift = brentq(lambda c: expit(logits + c).sum() - total, -50.0, 50.0, xtol=1e-12)
    return expit(logits + shift)


def predict_probabilities(model: NumberModel, frame: pd.DataFrame, target_date: date) -> NumberProbabilities:
    """Per-number probabilities of ``target_date`` from drawings dated strictly before it."""
    check_model_target(model, frame, target_date)
    matrix = matrix_for(target_date)
    out = {}
    for kind in KINDS:
        features = build_target_features(frame, target_date, kind, model.meta.config.features)
        names = model.meta.feature_names[kind]
        raw = np.asarray(model.boosters[kind].inplace_predict(features[names].to_numpy()), dtype=np.float64)
        probs = _scale_to_total(raw, WHITE_COUNT) if kind == "white" else raw / raw.sum()
        out[kind] = pd.Series(probs, index=features["number"].to_numpy(), name=kind).rename_axis("number")
    return NumberProbabilities(target_date, matrix, out["white"], out["pb"])


def save_model(model: NumberModel, directory: Path) -> Path:
    """Write ``white.json``, ``pb.json`` (XGBoost ``save_model`` JSON) and ``model.json`` (metadata).

    Each file is written under a temporary name and renamed into place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        tmp = directory / f".{kind}.tmp.json"  # the .json suffix selects XGBoost's JSON format
        model.boosters[kind].save_model(str(tmp))
        os.replace(tmp, directory / f"{kind}.json")
    tmp = directory / ".model.tmp.json"
    tmp.write_text(json.dumps(model.meta.as_json(), indent=2))
    os.replace(tmp, directory / "model.json")
    return directory


def load_model(directory: Path, frame: pd.DataFrame) -> NumberModel:
    """Read a model saved by :func:`save_model`, refusing it unless it was trained on ``frame``'s draws.

    ``frame`` may hold later drawings than the model saw; any difference in the drawings up to the
    model's last one raises :class:`ArtefactMismatchError`.
    """
    directory = Path(directory)
    try:
        data = json.loads((directory / "model.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ArtefactError(f"no readable model metadata at {directory / 'model.json'}: {err}") from err
    if data.get("format") != MODEL_FORMAT:
        raise ArtefactError(f"{directory / 'model.json'} is not a {MODEL_FORMAT} file (format {data.get('format')!r})")
    meta = ModelMeta.from_json(data)
    check_artefact_data(frame, stored_hash=meta.data_hash, last_date=meta.data_last_date, what="model", path=directory)
    boosters = {}
    for kind in KINDS:
        booster = xgb.Booster()
        try:
            booster.load_model(str(directory / f"{kind}.json"))
        except (OSError, xgb.core.XGBoostError) as err:
            raise ArtefactError(f"cannot read the {kind} booster at {directory / f'{kind}.json'}: {err}") from err
        boosters[kind] = booster
    return NumberModel(boosters, meta)
