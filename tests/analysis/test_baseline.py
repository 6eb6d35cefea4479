"""The exact random baseline against enumeration, and the size of the "no edge" test under fair drawings."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from shiol_lib.analysis.baseline import convolve_distributions, null_distribution, null_moments, run_edge_test


@pytest.mark.parametrize("picks, size", [(5, 10), (1, 6), (3, 7)])
def test_null_moments_match_enumeration(picks: int, size: int) -> None:
    coverage = np.random.default_rng(size).integers(0, 40, size=size).astype(float)
    sums = np.array([coverage[list(s)].sum() for s in combinations(range(size), picks)])
    mean, var = null_moments(coverage, picks)
    assert mean == pytest.approx(sums.mean()) and var == pytest.approx(sums.var())


def _coverage(strategy: str, previous: np.ndarray, previous_good: bool) -> np.ndarray:
    """Tickets per white ball (100 tickets) of a few ticket strategies, some adapting to the past."""
    coverage = np.zeros(69)
    if strategy == "crowded" or (strategy == "reactive" and previous_good):
        coverage[:10] = 50.0  # 100 tickets crowded on ten numbers: skewed, high-variance totals
    elif strategy == "adaptive":
        coverage[previous] = 100.0  # every ticket repeats the previous drawing
    else:
        coverage[:] = 7.0
        coverage[:17] += 1.0  # spread evenly: near-constant totals
    return coverage


def _simulated_p_values(strategy: str, reps: int, draws: int = 30, seed: int = 0) -> np.ndarray:
    """Verdict p-values of the edge test for ``reps`` simulated backtests under fair random drawings."""
    rng = np.random.default_rng(seed)
    p = np.empty(reps)
    for r in range(reps):
        drawn = np.argsort(rng.random((draws + 1, 69)), axis=1)[:, :5]
        totals, coverages, good = [], [], False
        for d in range(1, draws + 1):
            coverage = _coverage(strategy, drawn[d - 1], good)
            totals.append(coverage[drawn[d]].sum())
            coverages.append(coverage)
            good = totals[-1] > null_moments(coverage, 5)[0]
        test = run_edge_test(np.array(totals), coverages, 5, "white-ball")
        assert test.p_value == max(test.p_exact, test.p_normal)
        p[r] = test.p_value
    return p


@pytest.mark.parametrize("strategy", ["crowded", "adaptive", "reactive", "spread"])
def test_edge_test_size_is_at_most_nominal_under_fair_draws(strategy: str) -> None:
    p = _simulated_p_values(strategy, reps=1000)
    for alpha in (0.05, 0.01):
        rejections = int((p < alpha).sum())
        # a valid test rejects at most ~Binomial(1000, alpha) times; this bound fails with probability < 1e-4
        assert rejections <= stats.binom.ppf(1 - 1e-4, len(p), alpha), (alpha, rejections)


def test_exact_null_distribution_matches_enumeration_and_moments() -> None:
    coverage = np.random.default_rng(4).integers(0, 9, size=9)
    sums = np.array([coverage[list(s)].sum() for s in combinations(range(9), 4)])
    pmf = null_distribution(coverage, 4)
    assert np.allclose(pmf, np.bincount(sums, minlength=len(pmf)) / len(sums))
    mean, var = null_moments(coverage.astype(float), 4)
    support = np.arange(len(pmf))
    assert (pmf * support).sum() == pytest.approx(mean) and (pmf * (support - mean) ** 2).sum() == pytest.approx(var)
    two = convolve_distributions([pmf, pmf])
    assert two.sum() == pytest.approx(1.0) and (two * np.arange(len(two))).sum() == pytest.approx(2 * mean)
