"""A drawing and the draws frame: the one record type and the one DataFrame layout every layer shares.

:class:`Draw` is a validated drawing (the parsers in :mod:`shiol_lib.ingest.records` build them);
:data:`DRAW_COLUMNS` and :func:`normalize_draw_frame` define the canonical draws DataFrame that the
store returns and every analysis function takes; :data:`TICKET_COLUMNS` is the layout of a ticket.
:func:`draw_key` names the content of one drawing's row, so an evaluation can tell it was made against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a frame is built: `shiol --help` and `status` stay quick
    import pandas as pd

DRAW_COLUMNS = ["draw_date", "n1", "n2", "n3", "n4", "n5", "pb", "multiplier"]
# A ranked ticket as generated, stored and evaluated: rank 1 is the best score.
TICKET_COLUMNS = ["rank", "n1", "n2", "n3", "n4", "n5", "pb", "score"]


@dataclass(frozen=True, order=True)
class Draw:
    """One validated drawing: five sorted, distinct white balls, a Powerball, an optional multiplier."""

    draw_date: date
    whites: tuple[int, ...]
    powerball: int
    multiplier: int | None = None

    def numbers(self) -> tuple[int, ...]:
        """The six numbers (white balls ascending, then the Powerball), for comparisons."""
        return (*self.whites, self.powerball)

    def as_text(self) -> str:
        """``YYYY-MM-DD 01 02 03 04 05 PB 06 xM`` for messages and reports."""
        balls = " ".join(f"{n:02d}" for n in self.whites)
        mult = f" x{self.multiplier}" if self.multiplier is not None else ""
        return f"{self.draw_date.isoformat()} {balls} PB {self.powerball:02d}{mult}"


def draw_key(draw_date: date, numbers: Sequence[int], multiplier: int | None) -> str:
    """Short SHA-256 (16 hex digits) of a drawing's date, six numbers and multiplier.

    An evaluation stores the key of the drawing it was made against; a corrected drawing gets another key.
    """
    balls = " ".join(str(int(n)) for n in numbers)
    text = f"{draw_date:%Y-%m-%d} {balls} {'-' if multiplier is None else int(multiplier)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def draws_to_frame(draws: Iterable[Draw]) -> pd.DataFrame:
    """Draws as a DataFrame with :data:`DRAW_COLUMNS`, oldest first.

    ``draw_date`` is ``datetime64[ns]`` (midnight), the numbers ``int64``, ``multiplier`` nullable
    ``Int64``: the one layout every analysis function takes.
    """
    import pandas as pd

    rows = [(d.draw_date, *d.whites, d.powerball, d.multiplier) for d in sorted(draws)]
    frame = pd.DataFrame(rows, columns=DRAW_COLUMNS)
    return normalize_draw_frame(frame)


def normalize_draw_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a draws table (from the store or a parser) to the canonical dtypes, sorted by date."""
    import pandas as pd

    out = frame[DRAW_COLUMNS].copy()
    out["draw_date"] = pd.to_datetime(out["draw_date"]).astype("datetime64[ns]")
    for column in DRAW_COLUMNS[1:7]:
        out[column] = out[column].astype("int64")
    out["multiplier"] = out["multiplier"].astype("Int64")
    return out.sort_values("draw_date", ignore_index=True)
