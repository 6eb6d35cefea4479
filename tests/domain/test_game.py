"""The exact random baseline of game.py checked by enumeration (small matrix) and by identities (current)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest

from shiol_lib.analysis.baseline import expected_prize
from shiol_lib.domain.game import (
    CURRENT_MATRIX,
    MATRICES,
    PRIZE_TIERS,
    Matrix,
    expected_white_matches,
    powerball_probability,
    prize_value,
    tier_probability,
    white_match_probability,
)

SMALL = Matrix("test-11/4", date(2009, 1, 7), None, 11, 4, 2)


def test_small_matrix_probabilities_match_enumeration() -> None:
    """Every (ticket, drawing) pair of a 5-of-11 + 1-of-4 game, counted."""
    combos = np.array(list(combinations(range(1, SMALL.white_max + 1), 5)))
    member = np.zeros((len(combos), SMALL.white_max + 1), dtype=int)
    member[np.arange(len(combos))[:, None], combos] = 1
    matches = member @ member.T  # shared white balls of every ticket/drawing pair
    counts = np.bincount(matches.ravel(), minlength=6)
    total = len(combos) ** 2
    for k in range(6):
        assert white_match_probability(k, SMALL) == Fraction(int(counts[k]), total)
    for k in range(6):
        for pb in (True, False):
            pb_pairs = SMALL.pb_max if pb else SMALL.pb_max * (SMALL.pb_max - 1)
            expected = Fraction(int(counts[k]) * pb_pairs, total * SMALL.pb_max**2)
            assert tier_probability(k, pb, SMALL) == expected
    mean = Fraction(int((np.arange(6) * counts).sum()), total)
    assert expected_white_matches(SMALL) == mean


@pytest.mark.parametrize("matrix", MATRICES)
def test_probabilities_sum_to_one_and_mean_is_25_over_n(matrix: Matrix) -> None:
    assert sum(white_match_probability(k, matrix) for k in range(6)) == 1
    assert sum(tier_probability(k, pb, matrix) for k in range(6) for pb in (True, False)) == 1
    assert sum(k * white_match_probability(k, matrix) for k in range(6)) == Fraction(25, matrix.white_max)
    assert powerball_probability(matrix) == Fraction(1, matrix.pb_max)


def test_current_matrix_identities() -> None:
    assert expected_white_matches() == Fraction(25, 69)
    any_prize = sum(tier_probability(t.whites, t.powerball) for t in PRIZE_TIERS)
    assert round(float(1 / any_prize), 2) == 24.87
    assert tier_probability(5, True) == Fraction(1, 292_201_338)


def test_expected_prize_of_a_random_ticket() -> None:
    manual = sum(float(tier_probability(t.whites, t.powerball)) * (t.prize or 0) for t in PRIZE_TIERS)
    assert expected_prize() == pytest.approx(manual)
    assert expected_prize(CURRENT_MATRIX, 2) > expected_prize()
    assert prize_value(5, False, multiplier=10) == 2_000_000
