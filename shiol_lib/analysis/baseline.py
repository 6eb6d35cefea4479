"""The exact random-ticket baseline and the test of "no edge".

Under "no edge" each drawing is uniformly random and independent of the tickets fixed before it, so a
drawing's total matches have an exactly known distribution given its tickets: :func:`null_moments` and
:func:`null_distribution` (by dynamic programming), summed over drawings by
:func:`convolve_distributions`; :func:`run_edge_test` turns them into a one-sided test
(:class:`EdgeTest`). :func:`expected_prize` is a random ticket's exact expected prize and
:func:`t_interval` the confidence interval over drawings used beside these baselines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np
from scipy import signal, stats

from shiol_lib.domain.game import CURRENT_MATRIX, PRIZE_TIERS, Matrix, prize_value, tier_probability


def null_moments(coverage: np.ndarray, picks: int) -> tuple[float, float]:
    """Mean and variance of ``sum(coverage[S])`` for ``S`` a uniformly random ``picks``-subset.

    With ``coverage[n]`` the number of tickets holding number ``n``, this is the exact null distribution's
    mean and variance of a drawing's total matches (sampling without replacement from a finite population).
    """
    size = len(coverage)
    variance = picks * float(np.var(coverage)) * (size - picks) / (size - 1) if size > 1 else 0.0
    return picks * float(np.mean(coverage)), variance


@lru_cache(maxsize=4096)
def _null_pmf(profile: tuple[int, ...], picks: int) -> np.ndarray:
    top = sum(profile[-picks:])
    ways = np.zeros((picks + 1, top + 1))
    ways[0, 0] = 1.0
    for c in profile:  # subsets counted by size and sum, one number at a time (exact in float64)
        for j in range(picks, 0, -1):
            ways[j, c:] += ways[j - 1, : top + 1 - c]
    pmf = ways[picks] / comb(len(profile), picks)
    pmf.flags.writeable = False
    return pmf


def null_distribution(coverage: np.ndarray, picks: int) -> np.ndarray:
    """Exact pmf (index = total) of ``sum(coverage[S])`` over uniformly random ``picks``-subsets ``S``.

    ``coverage`` holds non-negative whole numbers (tickets per number); computed by dynamic programming.
    """
    return _null_pmf(tuple(sorted(int(c) for c in coverage)), picks)


def convolve_distributions(pmfs: list[np.ndarray]) -> np.ndarray:
    """The pmf of a sum of independent totals with the given pmfs (pairwise, FFT when large)."""
    layer = [np.asarray(p, dtype=float) for p in pmfs] or [np.ones(1)]
    while len(layer) > 1:
        merged = []
        for a, b in zip(layer[0::2], layer[1::2]):
            out = np.convolve(a, b) if len(a) * len(b) <= 4_000_000 else signal.fftconvolve(a, b)
            merged.append(np.clip(out, 0.0, None))
        if len(layer) % 2:
            merged.append(layer[-1])
        layer = merged
    return layer[0]


def expected_prize(matrix: Matrix = CURRENT_MATRIX, multiplier: int | None = None) -> float:
    """Exact expected cash prize of one random ticket (jackpot as $0), optionally with Power Play."""
    return float(
        sum(
            tier_probability(t.whites, t.powerball, matrix) * prize_value(t.whites, t.powerball, multiplier=multiplier)
            for t in PRIZE_TIERS
        )
    )


@dataclass(frozen=True)
class EdgeTest:
    """A one-sided test of "no edge": observed vs expected total matches under random drawings."""

    observed: float
    expected: float
    z: float
    p_exact: float
    p_normal: float
    p_value: float  # max(p_exact, p_normal): the verdict's p-value
    method: str


def run_edge_test(observed: np.ndarray, coverages: list[np.ndarray], picks: int, what: str) -> EdgeTest:
    """One-sided test of total matches against their exact per-drawing null distributions.

    The unit is the drawing, not the ticket: a drawing's tickets share one draw, so their matches are
    dependent. Under "no edge" each drawing is uniformly random and independent of the tickets fixed
    before it, so a drawing's total matches ``T_d = sum_n c_d(n) [n drawn]`` (``c_d(n)``: tickets holding
    number ``n``) has an exactly known distribution given the tickets (:func:`null_distribution`),
    whatever the tickets are. Two p-values for the total ``S = sum_d T_d``:

    * ``p_exact``: ``P(S >= observed)`` under the convolution of the per-drawing null distributions. It is
      exact when the drawings' coverage profiles do not react to earlier outcomes; it handles the skewed,
      discrete totals of concentrated ticket sets.
    * ``p_normal``: ``Z = (S - E S) / sqrt(sum Var T_d)`` with exact conditional means and variances. The
      centred totals are martingale differences even when the tickets adapt to earlier drawings, so Z is
      asymptotically N(0, 1) for any strategy (martingale CLT), but the normal tail can be too light for
      few drawings of crowded tickets.

    The verdict uses ``p_value = max(p_exact, p_normal)``: rejecting only when both reject keeps the size at
    most that of whichever test is valid for the strategy at hand.
    """
    pmfs = [null_distribution(c, picks) for c in coverages]
    moments = [null_moments(np.asarray(c, dtype=float), picks) for c in coverages]
    total_var = float(sum(v for _, v in moments))
    observed_total, expected_total = float(np.sum(observed)), float(sum(m for m, _ in moments))
    z = (observed_total - expected_total) / math.sqrt(total_var) if total_var > 0 else 0.0
    p_normal = float(stats.norm.sf(z)) if total_var > 0 else 1.0
    total_pmf = convolve_distributions(pmfs)
    p_exact = float(min(1.0, total_pmf[int(round(observed_total)) :].sum()))
    method = (
        f"one-sided test of total {what} matches over {len(coverages)} drawings (unit: the drawing) "
        f"against the exact null given each drawing's tickets: max of the exact convolution tail and the "
        f"martingale z test"
    )
    return EdgeTest(observed_total, expected_total, z, p_exact, p_normal, max(p_exact, p_normal), method)


def t_interval(values: np.ndarray, centre: float, confidence: float) -> tuple[float, float]:
    """A two-sided t interval of ``confidence`` around ``centre`` for the mean of ``values`` (NaNs below two)."""
    if len(values) < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return (float(centre - half), float(centre + half))
