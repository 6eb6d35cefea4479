"""Research target spans: which drawings of an asked span have enough earlier history in their era.

A walk-forward target needs a number of earlier drawings of its own matrix era (feature warm-up,
training targets, tuning). :func:`targets_with_history` starts a span at the first drawing that has
them and reports the ones skipped; plain dates only (no pandas), so the CLI can refuse a span before a
run is opened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from shiol_lib.domain.game import Matrix, matrix_for
from shiol_lib.errors import InsufficientHistoryError

# Earlier drawings of the era each research configuration needs before a target (feature warm-up +
# training targets + tuning drawings of shiol_lib.analysis.research.tasks.PRESETS; a test keeps them equal).
# Here (pandas-free) so that `shiol research backtest` can refuse a span before a run is opened.
RESEARCH_HISTORY_NEEDED = {"standard": 170, "fast": 56, "untuned": 50}


@dataclass(frozen=True)
class TargetSpan:
    """The drawings of an asked span that have enough earlier history in their era, and those skipped."""

    first: date  # the span as asked
    last: date
    matrix: Matrix
    needed: int  # earlier drawings of the era a target needs
    targets: tuple[date, ...]  # the drawings backtested, oldest first
    skipped: tuple[date, ...]  # the drawings of the span dated before the first with enough history
    available: int  # earlier drawings of the era before the span's first drawing

    @property
    def first_target(self) -> date:
        """The first drawing backtested."""
        return self.targets[0]

    def skipped_summary(self) -> dict[str, Any]:
        """The skipped drawings as plain JSON values: count, first and last date, needed, available, reason."""
        if not self.skipped:
            return {
                "drawings": 0,
                "from": None,
                "to": None,
                "needed": self.needed,
                "available": self.available,
                "reason": "",
            }
        return {
            "drawings": len(self.skipped),
            "from": self.skipped[0].isoformat(),
            "to": self.skipped[-1].isoformat(),
            "needed": self.needed,
            "available": self.available,
            "reason": f"fewer than {self.needed} earlier drawings of the {self.matrix.name} era (which starts "
            f"{self.matrix.first_date}): {self.available} before {self.skipped[0]}, "
            f"{self.available + len(self.skipped) - 1} before {self.skipped[-1]}",
        }


def targets_with_history(days: Iterable[date], first: date, last: date, needed: int) -> TargetSpan:
    """The drawings of ``days`` from ``first`` to ``last`` (inclusive) with ``needed`` earlier ones in their era.

    The drawings of the span before the first one with enough history are skipped (and reported by
    :meth:`TargetSpan.skipped_summary`). Raises ``ValueError`` for a span without a drawing or one that
    crosses a game-matrix change, and :class:`InsufficientHistoryError` when no drawing of the span has
    enough history.
    """
    days = sorted(set(days))
    span = [d for d in days if first <= d <= last]
    if not span:
        raise ValueError(f"nothing to backtest: no stored drawing from {first} to {last}")
    matrix = matrix_for(span[0])
    if matrix_for(span[-1]) != matrix:
        later = matrix_for(span[-1])
        raise ValueError(
            f"{first}..{last} crosses a game-matrix change; backtest one era at a time "
            f"(the {later.name} era starts {later.first_date})"
        )
    available = sum(1 for d in days if matrix.first_date <= d < span[0])
    skip = min(max(needed - available, 0), len(span))
    if skip == len(span):
        era = [d for d in days if matrix.contains(d)]
        hint = (
            f"the first stored drawing with enough is {era[needed]}"
            if len(era) > needed
            else f"the store holds only {len(era)} drawings of that era"
        )
        raise InsufficientHistoryError(
            f"no drawing from {first} to {last} has the {needed} earlier drawings of the {matrix.name} era a "
            f"target needs ({available} before {span[0]}, {available + len(span) - 1} before {span[-1]}); "
            f"{hint}: move the span later",
            available=available + len(span) - 1,
            needed=needed,
        )
    return TargetSpan(first, last, matrix, needed, tuple(span[skip:]), tuple(span[:skip]), available)
