"""Shared helpers of the analysis tests: the bundled history and small, fast settings."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd

import shiol_lib
from shiol_lib.analysis.backtest import BacktestConfig
from shiol_lib.analysis.features import FeatureConfig
from shiol_lib.analysis.model import ModelConfig
from shiol_lib.analysis.research.synthetic import generate_synthetic_draws
from shiol_lib.analysis.weights import WeightConfig
from shiol_lib.domain.draws import draws_to_frame
from shiol_lib.ingest.records import parse_ny_csv

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)

# Small windows and models: same code paths, a fraction of the cost.
FAST_FEATURES = FeatureConfig(windows=(5, 10, 20), halflife=10.0, pair_window=20, shape_window=10)
FAST_MODEL = ModelConfig(n_estimators=20, min_train_targets=30, features=FAST_FEATURES)
FAST_WEIGHTS = WeightConfig(tune_draws=6, max_evaluations=8, pool_size=400)
FAST_BACKTEST = BacktestConfig(test_draws=30, refit_every=30, model=FAST_MODEL, weights=FAST_WEIGHTS)


@lru_cache(maxsize=1)
def _real_frame() -> pd.DataFrame:
    text = (Path(shiol_lib.__file__).parent / "data" / "powerball_draws_ny.csv").read_text()
    batch = parse_ny_csv(text, source="bundled", now=NOW)
    assert batch.ok
    return draws_to_frame(batch.draws)


def real_frame() -> pd.DataFrame:
    """The bundled history (1,647 drawings), a fresh copy each call."""
    return _real_frame().copy()


@lru_cache(maxsize=8)
def _synthetic(n_draws: int, seed: int) -> pd.DataFrame:
    return generate_synthetic_draws(n_draws, seed=seed)


def fair_frame(n_draws: int = 120, seed: int = 7) -> pd.DataFrame:
    """A fair synthetic history of the current matrix, a fresh copy each call."""
    return _synthetic(n_draws, seed).copy()
