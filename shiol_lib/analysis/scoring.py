"""The ticket scorer: ``score(ticket) = w . (model, diversity, shape)`` and the greedy selection using it.

Components of a candidate ticket, for one target drawing:

* ``model``: the sum of the log-probability ratios (model / uniform) of its five white balls and its
  Powerball, standardised over the candidate pool;
* ``diversity``: minus its mean overlap (shared white balls + same Powerball) with the tickets already
  selected, in units of the overlap's standard deviation between two random tickets;
* ``shape``: how typical its white-ball sum and odd count are among earlier drawings of the era
  (log-frequency of its sum bin and odd count), standardised over the pool.

Selection is greedy: pick the best-scoring candidate, update the coverage, repeat. The weights are used
as a direction (unit length), so only their ratios matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from shiol_lib.analysis.model import NumberProbabilities
from shiol_lib.domain.game import WHITE_COUNT, Matrix
from shiol_lib.domain.history import WHITE_COLUMNS, era_history
from shiol_lib.errors import TicketRequestError

COMPONENTS = ("model", "diversity", "shape")
SOFT_TEMPERATURE = 0.5  # softmax temperature of the smoothed objective, in standardised score units
_SUM_BINS = 10
_MODEL_SHARE = 0.5  # half of the pool is sampled from the model, half uniformly at random
_SHARED_CACHE_BYTES = 16 * 2**20  # rows of CandidatePool.shared_with kept per pool


@dataclass(frozen=True)
class Weights:
    """Weights of the scorer components; used as a unit-length direction."""

    model: float = 1.0
    diversity: float = 0.5
    shape: float = 0.25

    def vector(self) -> np.ndarray:
        """The weights as a unit vector ``(model, diversity, shape)``."""
        raw = np.array([self.model, self.diversity, self.shape], dtype=float)
        norm = float(np.linalg.norm(raw))
        if not np.isfinite(norm) or norm == 0.0:
            raise TicketRequestError(f"scorer weights {raw.tolist()} are all zero or not finite")
        return raw / norm

    @classmethod
    def from_vector(cls, values: np.ndarray) -> Weights:
        """Weights from a 3-vector (normalised to unit length)."""
        unit = cls(*(float(v) for v in values)).vector()
        return cls(*(float(v) for v in unit))


@dataclass(frozen=True)
class ShapeProfile:
    """Log-frequencies of white-ball sums (binned) and odd counts among earlier drawings of an era."""

    sum_edges: np.ndarray
    sum_logp: np.ndarray
    odd_logp: np.ndarray

    def score(self, whites: np.ndarray) -> np.ndarray:
        """Typicality (log-frequency of sum bin + of odd count) of each row of white balls."""
        bins = np.clip(np.searchsorted(self.sum_edges, whites.sum(axis=1), side="right") - 1, 0, len(self.sum_logp) - 1)
        odd = (whites % 2 == 1).sum(axis=1)
        return self.sum_logp[bins] + self.odd_logp[odd]


def build_shape_profile(frame: pd.DataFrame, target_date: date) -> ShapeProfile:
    """The shape profile of the era of ``target_date`` from drawings dated strictly before it (smoothed)."""
    matrix, era = era_history(frame, target_date)
    whites = era[WHITE_COLUMNS].to_numpy()
    low, high = 15, 5 * matrix.white_max - 10
    sums = whites.sum(axis=1)
    inner = np.quantile(sums, np.linspace(0, 1, _SUM_BINS + 1)[1:-1]) if len(sums) else np.array([])
    edges = np.unique(np.concatenate([[low], inner, [high + 1]]))
    counts = np.histogram(sums, bins=edges)[0] + 1.0  # Laplace smoothing
    odd_counts = np.bincount((whites % 2 == 1).sum(axis=1), minlength=WHITE_COUNT + 1) + 1.0
    return ShapeProfile(edges, np.log(counts / counts.sum()), np.log(odd_counts / odd_counts.sum()))


def _standardise(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


def overlap_scale(matrix: Matrix) -> float:
    """Standard deviation of (shared white balls + same Powerball) between two random tickets."""
    n = matrix.white_max
    white_var = WHITE_COUNT * (WHITE_COUNT / n) * ((n - WHITE_COUNT) / n) * ((n - WHITE_COUNT) / (n - 1))
    pb_p = 1.0 / matrix.pb_max
    return math.sqrt(white_var + pb_p * (1 - pb_p))


@dataclass(frozen=True)
class CandidatePool:
    """Distinct candidate tickets of one target with their static (standardised) components."""

    matrix: Matrix
    whites: np.ndarray  # (M, 5) ascending, 1-based
    pb: np.ndarray  # (M,)
    model: np.ndarray
    shape: np.ndarray
    _shared: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.pb)

    @cached_property
    def holders(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Pool indices of the candidates holding each white ball and each Powerball (list index = number)."""
        return _holders(self.whites, self.matrix.white_max), _holders(self.pb[:, None], self.matrix.pb_max)

    def shared_with(self, j: int) -> np.ndarray:
        """Numbers (white balls + Powerball) every candidate shares with candidate ``j``, as ``uint8``.

        Kept for the candidates asked about (up to :data:`_SHARED_CACHE_BYTES` per pool): a tuning pool
        is selected from again for every weight vector the optimizer tries, mostly picking the same ones.
        """
        row = self._shared.get(j)
        if row is None:
            white_holders, pb_holders = self.holders
            rows = np.concatenate([*(white_holders[number] for number in self.whites[j]), pb_holders[self.pb[j]]])
            row = np.bincount(rows, minlength=len(self)).astype(np.uint8)
            if (len(self._shared) + 1) * len(self) <= _SHARED_CACHE_BYTES:
                self._shared[j] = row
        return row


def _holders(numbers: np.ndarray, top: int) -> list[np.ndarray]:
    """For each number 0..``top``, the rows of ``numbers`` (one row per candidate) that hold it, ascending."""
    rows = np.repeat(np.arange(len(numbers)), numbers.shape[1])
    values = numbers.ravel()
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(top + 2))
    return [rows[order[bounds[v] : bounds[v + 1]]] for v in range(top + 1)]


def _sample_whites(p_white: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Five distinct white balls per row, drawn without replacement in proportion to ``p_white``."""
    keys = np.log(p_white)[None, :] + rng.gumbel(size=(size, len(p_white)))  # Gumbel top-k
    return np.sort(np.argpartition(-keys, WHITE_COUNT - 1, axis=1)[:, :WHITE_COUNT], axis=1) + 1


def sample_pool(
    probs: NumberProbabilities, profile: ShapeProfile, size: int, rng: np.random.Generator
) -> CandidatePool:
    """Sample ``size`` candidates, half from the model probabilities and half uniformly, then dedupe."""
    matrix = probs.matrix
    p_white = probs.white.to_numpy(dtype=float)
    p_pb = probs.pb.to_numpy(dtype=float)
    n_model = int(round(size * _MODEL_SHARE))
    uniform_white = np.full(matrix.white_max, 1.0 / matrix.white_max)
    whites = np.vstack([_sample_whites(p_white, n_model, rng), _sample_whites(uniform_white, size - n_model, rng)])
    pb = (
        np.concatenate(
            [
                rng.choice(matrix.pb_max, size=n_model, p=p_pb / p_pb.sum()),
                rng.integers(0, matrix.pb_max, size=size - n_model),
            ]
        )
        + 1
    )
    unique = np.unique(np.column_stack([whites, pb]), axis=0)
    whites, pb = unique[:, :WHITE_COUNT], unique[:, WHITE_COUNT]
    log_ratio_white = np.log(p_white * matrix.white_max / WHITE_COUNT)
    log_ratio_pb = np.log(p_pb * matrix.pb_max)
    model = log_ratio_white[whites - 1].sum(axis=1) + log_ratio_pb[pb - 1]
    return CandidatePool(matrix, whites, pb, _standardise(model), _standardise(profile.score(whites)))


def greedy_select(
    pool: CandidatePool,
    weights: Weights,
    n: int,
    *,
    matches: np.ndarray | None = None,
    temperature: float = SOFT_TEMPERATURE,
) -> tuple[np.ndarray, float]:
    """Pick ``n`` candidates greedily by score; return their pool indices and the smoothed objective.

    The smoothed objective (only when ``matches``, the white matches of each candidate, is given) is the
    mean over the ``n`` steps of the softmax(score / temperature)-weighted mean of ``matches`` among the
    candidates still available: a continuous function of the weights that tracks the hard selection.

    Incremental: each candidate's overlap with the selection (shared white balls + same Powerball) grows
    by what it shares with the last pick (:meth:`CandidatePool.shared_with`) instead of being recomputed
    from the coverage at each step. The overlaps are whole numbers, so the scores are the same floats.
    """
    if n > len(pool):
        raise TicketRequestError(f"{n} tickets asked but only {len(pool)} distinct candidates were sampled")
    w_model, w_div, w_shape = weights.vector()
    static = w_model * pool.model + w_shape * pool.shape  # a picked candidate's entry becomes -inf
    scale = overlap_scale(pool.matrix)
    overlap = np.zeros(len(pool))  # shared numbers with the picks so far: whole numbers, exact in float
    score = static.copy()
    work = np.empty(len(pool))
    chosen = np.empty(n, dtype=np.int64)
    soft = 0.0
    for k in range(n):
        if k:
            np.multiply(w_div, overlap, out=work)
            work /= k * scale
            np.subtract(static, work, out=score)
        j = int(score.argmax())
        if matches is not None:
            np.subtract(score, score[j], out=work)
            work /= temperature
            np.exp(work, out=work)
            soft += float(work.dot(matches)) / float(work.sum())
        chosen[k] = j
        static[j] = -np.inf
        overlap += pool.shared_with(j)
    return chosen, soft / n


def final_scores(pool: CandidatePool, chosen: np.ndarray, weights: Weights) -> np.ndarray:
    """Scores of the selected tickets, diversity taken against the other selected tickets."""
    w_model, w_div, w_shape = weights.vector()
    whites, pb = pool.whites[chosen], pool.pb[chosen]
    static = w_model * pool.model[chosen] + w_shape * pool.shape[chosen]
    if len(chosen) < 2:
        return static
    cov_white = np.bincount(whites.ravel(), minlength=pool.matrix.white_max + 1)
    cov_pb = np.bincount(pb, minlength=pool.matrix.pb_max + 1)
    overlap_others = cov_white[whites].sum(axis=1) + cov_pb[pb] - (WHITE_COUNT + 1)
    return static - w_div * overlap_others / ((len(chosen) - 1) * overlap_scale(pool.matrix))
