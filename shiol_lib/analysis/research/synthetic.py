"""Synthetic draw histories under the current matrix and calendar, fair or with planted biases.

They let the pipeline be checked against a known truth: with a planted bias the walk-forward test must
find an edge, on fair histories it must reject no more often than its nominal level.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd

from shiol_lib.domain.draw_calendar import expected_draws
from shiol_lib.domain.draws import DRAW_COLUMNS, normalize_draw_frame
from shiol_lib.domain.game import CURRENT_MATRIX, WHITE_COUNT

MULTIPLIER_VALUES = (2, 3, 4, 5, 10)
MULTIPLIER_WEIGHTS = (0.45, 0.3, 0.13, 0.08, 0.04)


def _weights(size: int, biased: Sequence[int], bias: float, what: str) -> np.ndarray:
    if bias <= 0 or not np.isfinite(bias):
        raise ValueError(f"{what} bias must be a positive number (1 = fair), got {bias}")
    outside = [n for n in biased if not 1 <= n <= size]
    if outside:
        raise ValueError(f"biased {what} number(s) {outside} outside 1-{size}")
    weights = np.ones(size)
    weights[np.asarray(sorted(set(biased)), dtype=int) - 1] = bias
    return weights


def generate_synthetic_draws(
    n_draws: int,
    *,
    seed: int = 0,
    biased_whites: Sequence[int] = (),
    bias: float = 1.0,
    biased_pb: Sequence[int] = (),
    pb_bias: float = 1.0,
    start: date = CURRENT_MATRIX.first_date,
) -> pd.DataFrame:
    """A canonical draws frame of ``n_draws`` scheduled drawings from ``start`` (current matrix).

    White balls are drawn without replacement, each number with weight ``bias`` if in ``biased_whites``
    and 1 otherwise (``bias=1``: a fair drawing); the Powerball likewise with ``biased_pb``/``pb_bias``.
    Dates follow the real calendar (:func:`draw_calendar.expected_draws`) and may lie in the future.
    Reproducible from ``seed``.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    if start < CURRENT_MATRIX.first_date:
        raise ValueError(f"start {start} is before the current matrix ({CURRENT_MATRIX.first_date})")
    white_w = _weights(CURRENT_MATRIX.white_max, biased_whites, bias, "white")
    pb_w = _weights(CURRENT_MATRIX.pb_max, biased_pb, pb_bias, "Powerball")
    dates = expected_draws(start, start + timedelta(days=4 * n_draws + 7))[:n_draws]
    rng = np.random.default_rng(seed)
    keys = np.log(white_w)[None, :] + rng.gumbel(size=(n_draws, len(white_w)))  # weighted sampling w/o replacement
    whites = np.sort(np.argsort(-keys, axis=1)[:, :WHITE_COUNT], axis=1) + 1
    pb = rng.choice(len(pb_w), size=n_draws, p=pb_w / pb_w.sum()) + 1
    multiplier = rng.choice(MULTIPLIER_VALUES, size=n_draws, p=MULTIPLIER_WEIGHTS)
    frame = pd.DataFrame(whites, columns=DRAW_COLUMNS[1:6])
    frame.insert(0, "draw_date", pd.to_datetime(dates))
    frame["pb"] = pb
    frame["multiplier"] = multiplier
    return normalize_draw_frame(frame)
