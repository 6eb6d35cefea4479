"""The incremental greedy selection against the naive one it replaced: same picks, same objective, bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiol_lib.analysis import scoring
from shiol_lib.analysis.scoring import SOFT_TEMPERATURE, CandidatePool, Weights, greedy_select, overlap_scale
from shiol_lib.domain.game import CURRENT_MATRIX, MATRICES, Matrix


def naive_greedy(
    pool: CandidatePool,
    weights: Weights,
    n: int,
    *,
    matches: np.ndarray | None = None,
    temperature: float = SOFT_TEMPERATURE,
) -> tuple[np.ndarray, float]:
    """The reference: every candidate's overlap recomputed from the coverage at each of the ``n`` picks."""
    w_model, w_div, w_shape = weights.vector()
    static = w_model * pool.model + w_shape * pool.shape
    scale = overlap_scale(pool.matrix)
    cov_white = np.zeros(pool.matrix.white_max + 1)
    cov_pb = np.zeros(pool.matrix.pb_max + 1)
    available = np.ones(len(pool), dtype=bool)
    chosen = np.empty(n, dtype=np.int64)
    soft = 0.0
    for k in range(n):
        score = static.copy()
        if k:
            score -= w_div * (cov_white[pool.whites].sum(axis=1) + cov_pb[pool.pb]) / (k * scale)
        score[~available] = -np.inf
        j = int(np.argmax(score))
        if matches is not None:
            e = np.exp((score - score[j]) / temperature)
            soft += float(e @ matches) / float(e.sum())
        chosen[k] = j
        available[j] = False
        cov_white[pool.whites[j]] += 1
        cov_pb[pool.pb[j]] += 1
    return chosen, soft / n


def random_pool(rng: np.random.Generator, size: int, matrix: Matrix, ties: bool) -> CandidatePool:
    """Distinct random tickets; with ``ties``, coarse component values so that many scores tie."""
    keys = rng.random((size, matrix.white_max))
    whites = np.sort(np.argpartition(keys, 4, axis=1)[:, :5] + 1, axis=1)
    pb = rng.integers(1, matrix.pb_max + 1, size)
    unique = np.unique(np.column_stack([whites, pb]), axis=0)
    m = len(unique)
    model, shape = rng.normal(size=m), rng.normal(size=m)
    if ties:
        model, shape = np.round(model), np.round(shape)
    return CandidatePool(matrix, unique[:, :5], unique[:, 5], model, shape)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 400),
    era=st.sampled_from(MATRICES),
    ties=st.booleans(),
    with_matches=st.booleans(),
    weights=st.tuples(*(st.sampled_from([-1.0, -0.3, 0.0, 0.2, 0.5, 1.0]) for _ in range(3))).filter(any),
)
def test_incremental_greedy_equals_the_naive_reference(
    seed: int, size: int, era: Matrix, ties: bool, with_matches: bool, weights: tuple[float, float, float]
) -> None:
    rng = np.random.default_rng(seed)
    pool = random_pool(rng, size, era, ties)
    n = int(rng.integers(1, len(pool) + 1))
    matches = rng.integers(0, 6, len(pool)).astype(float) if with_matches else None
    w = Weights(*weights)
    fast, fast_soft = greedy_select(pool, w, n, matches=matches)
    slow, slow_soft = naive_greedy(pool, w, n, matches=matches)
    assert np.array_equal(fast, slow)
    assert fast_soft == slow_soft  # identical floats, not merely close
    assert len(set(fast.tolist())) == n


def test_holders_index_every_number_of_every_candidate() -> None:
    pool = random_pool(np.random.default_rng(5), 300, CURRENT_MATRIX, ties=False)
    whites, pbs = pool.holders
    assert len(whites) == CURRENT_MATRIX.white_max + 1 and len(pbs) == CURRENT_MATRIX.pb_max + 1
    for number, rows in enumerate(whites):
        assert rows.tolist() == np.flatnonzero((pool.whites == number).any(axis=1)).tolist()
    for number, rows in enumerate(pbs):
        assert rows.tolist() == np.flatnonzero(pool.pb == number).tolist()


def test_shared_with_counts_common_numbers_and_keeps_a_bounded_cache(monkeypatch) -> None:
    pool = random_pool(np.random.default_rng(6), 500, CURRENT_MATRIX, ties=False)
    for j in (0, 17, len(pool) - 1):
        expected = (pool.whites[:, :, None] == pool.whites[j][None, None, :]).sum(axis=(1, 2)) + (pool.pb == pool.pb[j])
        assert pool.shared_with(j).tolist() == expected.tolist()
        assert pool.shared_with(j) is pool.shared_with(j)  # kept
    monkeypatch.setattr(scoring, "_SHARED_CACHE_BYTES", 3 * len(pool))
    small = random_pool(np.random.default_rng(7), 500, CURRENT_MATRIX, ties=False)
    rows = [small.shared_with(j) for j in range(10)]
    assert len(small._shared) == 3 and all(r.dtype == np.uint8 for r in rows)
