"""Kept results of walk-forward replays (step 4), by key: read before a backtest, written after it.

The keys and the bytes are the analysis's (``shiol_lib.analysis.replay``); this module only stores them.
The rows are derived data: deleting any of them costs a recomputation, never a different result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import pandas as pd

from shiol_lib.store.core import Store
from shiol_lib.store.rows import scalar

KINDS = ("refit", "tickets")


def read_replays(store: Store, keys: Sequence[str]) -> dict[str, bytes]:
    """The kept payloads of those ``keys`` that the store holds (one query)."""
    if not keys:
        return {}
    wanted = pd.DataFrame({"replay_key": list(dict.fromkeys(keys))})
    with store.connect() as conn:
        conn.register("wanted_replays", wanted)
        rows = conn.execute("SELECT r.replay_key, r.payload FROM backtest_replays r "
                            "JOIN wanted_replays w USING (replay_key)").fetchall()
        conn.unregister("wanted_replays")
    return {key: bytes(payload) for key, payload in rows}


def save_replays(store: Store, entries: Iterable[tuple[str, str, date, bytes]]) -> int:
    """Keep ``(key, kind, draw_date, payload)`` rows in one transaction (a key kept already is replaced)."""
    rows = list(entries)
    for key, kind, _, _ in rows:
        if kind not in KINDS:
            raise ValueError(f"replay {key[:12]}... has kind {kind!r}; known: {', '.join(KINDS)}")
    if not rows:
        return 0
    now = datetime.now(UTC)
    with store.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO backtest_replays VALUES (?, ?, ?, ?, ?)",
                         [[key, kind, day, payload, now] for key, kind, day, payload in rows])
    return len(rows)


def count_replays(store: Store) -> dict[str, int]:
    """Kept rows by kind (``refit``, ``tickets``)."""
    with store.connect() as conn:
        rows = conn.execute("SELECT kind, count(*) FROM backtest_replays GROUP BY kind").fetchall()
    return {kind: 0 for kind in KINDS} | {kind: int(n) for kind, n in rows}


def delete_replays(store: Store, *, before: date | None = None) -> int:
    """Delete kept rows (those of drawings dated before ``before``, or all); returns how many went."""
    with store.transaction() as conn:
        where, params = ("WHERE draw_date < ?", [before]) if before is not None else ("", [])
        count = scalar(conn, f"SELECT count(*) FROM backtest_replays {where}", params)
        conn.execute(f"DELETE FROM backtest_replays {where}", params)
    return int(count)
