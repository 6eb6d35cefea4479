"""Tickets for a target drawing: N valid, distinct tickets ranked by the scorer, reproducible from a seed."""

from __future__ import annotations

import logging
from datetime import date
from math import comb

import numpy as np
import pandas as pd

from shiol_lib.analysis.model import NumberModel, NumberProbabilities, check_model_target, predict_probabilities
from shiol_lib.analysis.scoring import (
    ShapeProfile,
    Weights,
    build_shape_profile,
    final_scores,
    greedy_select,
    sample_pool,
)
from shiol_lib.analysis.weights import OptimizedWeights, check_weights_target
from shiol_lib.domain.draws import TICKET_COLUMNS
from shiol_lib.domain.game import WHITE_COUNT, Matrix, matrix_for
from shiol_lib.domain.history import WHITE_COLUMNS, frame_before
from shiol_lib.errors import TicketRequestError

log = logging.getLogger(__name__)

MAX_TICKETS = 5000  # the greedy selection is O(N x pool); beyond this, ask for several runs
DEFAULT_TICKETS = 100


def check_ticket_count(n: int, matrix: Matrix) -> None:
    """Raise :class:`TicketRequestError` unless 1 <= n <= what the generator can produce."""
    distinct = comb(matrix.white_max, WHITE_COUNT) * matrix.pb_max
    limit = min(MAX_TICKETS, distinct)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= limit:
        raise TicketRequestError(
            f"ticket count must be a whole number from 1 to {limit:,} (the generator's limit; the {matrix.name} "
            f"matrix has {distinct:,} distinct tickets), got {n!r}"
        )


def select_tickets(
    probs: NumberProbabilities,
    weights: Weights,
    profile: ShapeProfile,
    *,
    n: int = DEFAULT_TICKETS,
    seed: int = 0,
    pool_size: int | None = None,
) -> pd.DataFrame:
    """Select ``n`` distinct tickets from a sampled candidate pool; columns :data:`TICKET_COLUMNS`.

    Rank 1 is the highest score (diversity scored against the other selected tickets); ties are broken
    by the numbers. The same inputs and seed give the same tickets.
    """
    check_ticket_count(n, probs.matrix)
    rng = np.random.default_rng(seed)
    size = max(pool_size or 1000, 10 * n)
    pool = sample_pool(probs, profile, size, rng)
    chosen, _ = greedy_select(pool, weights, n)
    table = pd.DataFrame(pool.whites[chosen], columns=WHITE_COLUMNS)
    table["pb"] = pool.pb[chosen]
    table["score"] = final_scores(pool, chosen, weights)
    table = table.sort_values(["score", *WHITE_COLUMNS, "pb"], ascending=[False] + [True] * 6, ignore_index=True)
    table.insert(0, "rank", np.arange(1, n + 1))
    return table[TICKET_COLUMNS].astype({c: "int64" for c in TICKET_COLUMNS[:-1]})


def generate_tickets(
    frame: pd.DataFrame,
    model: NumberModel,
    weights: OptimizedWeights | Weights,
    target_date: date,
    n: int = DEFAULT_TICKETS,
    seed: int = 0,
) -> pd.DataFrame:
    """Step 5: ``n`` ranked tickets for ``target_date`` from the model and the (optimized) weights.

    Uses only drawings dated strictly before ``target_date``; refuses a model or weights built from other
    draws or from drawings on or after the target. Returns ``draw_date`` (the target) and
    :data:`TICKET_COLUMNS`.
    """
    history = frame_before(frame, target_date)
    check_model_target(model, history, target_date)
    check_ticket_count(n, matrix_for(target_date))
    if isinstance(weights, OptimizedWeights):
        check_weights_target(weights, history, target_date)
        weights = weights.weights
    probs = predict_probabilities(model, history, target_date)
    tickets = select_tickets(probs, weights, build_shape_profile(history, target_date), n=n, seed=seed)
    tickets.insert(0, "draw_date", pd.Timestamp(target_date).as_unit("ns"))
    log.debug("generated %d tickets for %s (seed %d)", n, target_date, seed)
    return tickets
