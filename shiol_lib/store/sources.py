"""The ``source_answers`` table: when each network source was last asked and when it last answered.

A source *answered* when it sent a response in its format (a drawing, a page of records, a 404 "no
record"); a connection error, a timeout, an error status or a body that is not its format is asked but
not answered. The bundled snapshot is not a source here: offline updates record nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shiol_lib.store.core import Store


@dataclass(frozen=True)
class SourceAnswer:
    """One network source's record: its last ask, its last answer (None: never) and the last outcome."""

    source: str
    last_asked_at: datetime
    last_answered_at: datetime | None
    last_outcome: str


def record_source_asks(store: Store, asks: Mapping[str, tuple[bool, str]], *, at: datetime) -> None:
    """Record that each source in ``asks`` was asked at ``at``: ``(answered, outcome)`` per source."""
    if not asks:
        return
    with store.transaction() as conn:
        for source, (answered, outcome) in asks.items():
            conn.execute(
                "INSERT INTO source_answers VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
                "last_asked_at = excluded.last_asked_at, last_outcome = excluded.last_outcome, "
                "last_answered_at = coalesce(excluded.last_answered_at, source_answers.last_answered_at)",
                [source, at, at if answered else None, outcome[:500]],
            )


def read_source_answers(store: Store) -> list[SourceAnswer]:
    """Every source's record, by name."""
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT source, last_asked_at, last_answered_at, last_outcome FROM source_answers ORDER BY source"
        ).fetchall()
    return [SourceAnswer(r[0], _aware(r[1]), _aware(r[2]) if r[2] else None, r[3]) for r in rows]


def last_answer_summary(store: Store, now: datetime) -> dict[str, object]:
    """JSON-ready: when any source last answered, how many seconds ago, and each source's record."""
    answers = read_source_answers(store)
    answered = [a.last_answered_at for a in answers if a.last_answered_at is not None]
    last = max(answered) if answered else None
    return {
        "last_answered_at_utc": last.isoformat() if last else None,
        "seconds_since_last_answer": round((now - last).total_seconds(), 1) if last else None,
        "sources": {
            a.source: {
                "last_asked_at_utc": a.last_asked_at.isoformat(),
                "last_answered_at_utc": a.last_answered_at.isoformat() if a.last_answered_at else None,
                "last_outcome": a.last_outcome,
            }
            for a in answers
        },
    }


def _aware(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
