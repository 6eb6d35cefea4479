"""Powerball game rules: the matrix era of a draw date, prize tiers and the exact random baseline.

Eras are tagged by date, never by the values seen (DESIGN.md, domain facts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from math import comb

from shiol_lib.errors import UnknownMatrixError

WHITE_COUNT = 5
MULTIPLIERS = frozenset({2, 3, 4, 5, 10})


@dataclass(frozen=True)
class Matrix:
    """One game matrix: 5 of ``white_max`` white balls, 1 of ``pb_max`` Powerballs."""

    name: str
    first_date: date
    last_date: date | None
    white_max: int
    pb_max: int
    ticket_price: int

    def contains(self, day: date) -> bool:
        """Whether draws dated ``day`` use this matrix."""
        return day >= self.first_date and (self.last_date is None or day <= self.last_date)


MATRICES: tuple[Matrix, ...] = (
    Matrix("2009-59/39", date(2009, 1, 7), date(2012, 1, 14), 59, 39, 1),
    Matrix("2012-59/35", date(2012, 1, 15), date(2015, 10, 6), 59, 35, 2),
    Matrix("2015-69/26", date(2015, 10, 7), None, 69, 26, 2),
)
CURRENT_MATRIX = MATRICES[-1]


def matrix_for(day: date) -> Matrix:
    """Return the matrix of draws dated ``day``; raise :class:`UnknownMatrixError` before 2009-01-07."""
    for matrix in MATRICES:
        if matrix.contains(day):
            return matrix
    raise UnknownMatrixError(
        f"no known Powerball matrix for {day.isoformat()}: the workbench knows draws dated "
        f"{MATRICES[0].first_date.isoformat()} onward"
    )


@dataclass(frozen=True)
class PrizeTier:
    """A prize tier: ``whites`` white matches with (or without) the Powerball."""

    whites: int
    powerball: bool
    prize: int | None  # None: the pari-mutuel jackpot
    power_play_prize: int | None

    @property
    def label(self) -> str:
        """Short label such as ``4+PB`` or ``3``."""
        return f"{self.whites}+PB" if self.powerball else str(self.whites)


# Current matrix (2015-10-07 onward), DESIGN.md. Power Play multiplies non-jackpot prizes, except that
# the 5-white prize becomes a flat $2,000,000.
PRIZE_TIERS: tuple[PrizeTier, ...] = (
    PrizeTier(5, True, None, None),
    PrizeTier(5, False, 1_000_000, 2_000_000),
    PrizeTier(4, True, 50_000, None),
    PrizeTier(4, False, 100, None),
    PrizeTier(3, True, 100, None),
    PrizeTier(3, False, 7, None),
    PrizeTier(2, True, 7, None),
    PrizeTier(1, True, 4, None),
    PrizeTier(0, True, 4, None),
)
POWER_PLAY_PRICE = 1


def prize_tier(whites: int, powerball: bool) -> PrizeTier | None:
    """The tier won by a ticket with ``whites`` white matches and the Powerball matched or not."""
    for tier in PRIZE_TIERS:
        if tier.whites == whites and tier.powerball == powerball:
            return tier
    return None


def prize_value(whites: int, powerball: bool, *, multiplier: int | None = None, jackpot: int = 0) -> int:
    """Cash value of a ticket in the current matrix; ``multiplier`` applies Power Play when given."""
    tier = prize_tier(whites, powerball)
    if tier is None:
        return 0
    if tier.prize is None:
        return jackpot
    if multiplier is None:
        return tier.prize
    if tier.power_play_prize is not None:
        return tier.power_play_prize
    return tier.prize * multiplier


def white_match_probability(k: int, matrix: Matrix = CURRENT_MATRIX) -> Fraction:
    """Exact probability that a random ticket matches ``k`` of the 5 white balls drawn."""
    if not 0 <= k <= WHITE_COUNT:
        return Fraction(0)
    others = matrix.white_max - WHITE_COUNT
    return Fraction(comb(WHITE_COUNT, k) * comb(others, WHITE_COUNT - k), comb(matrix.white_max, WHITE_COUNT))


def powerball_probability(matrix: Matrix = CURRENT_MATRIX) -> Fraction:
    """Exact probability that a random ticket matches the Powerball."""
    return Fraction(1, matrix.pb_max)


def tier_probability(whites: int, powerball: bool, matrix: Matrix = CURRENT_MATRIX) -> Fraction:
    """Exact probability of exactly ``whites`` white matches and the Powerball matched or not."""
    p_pb = powerball_probability(matrix)
    return white_match_probability(whites, matrix) * (p_pb if powerball else 1 - p_pb)


def expected_white_matches(matrix: Matrix = CURRENT_MATRIX) -> Fraction:
    """Expected number of white matches of a random ticket (25/69 in the current matrix)."""
    return Fraction(WHITE_COUNT * WHITE_COUNT, matrix.white_max)
