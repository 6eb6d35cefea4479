"""Ticket evaluations made in the store: one DuckDB query scores the pending tickets, in one transaction.

A stored ticket is *pending* when its drawing is in the store and no evaluation of it was made against
the drawing's current row: it has none yet, or the ``draw_key`` its evaluation recorded
(:func:`shiol_lib.domain.draws.draw_key`) differs from the drawing's, because the drawing was corrected.
White matches, Powerball match, tier, prizes (jackpot valued at $0, prizes only in the current matrix,
Power Play with the drawing's multiplier) are computed by one query over the pending tickets only; the
tiers come from :data:`shiol_lib.domain.game.PRIZE_TIERS`, registered as a small table, and the rule of
:func:`shiol_lib.domain.game.prize_value` is its ``CASE``. The results are written in the same
transaction that computed them, and returned with the columns :data:`RESULT_COLUMNS`.

The query looks at ticket rows only on the dates that can hold pending tickets: a date is passed over when
its tickets and its current evaluations have the same count and the same sum of 64-bit hashes of
``(run_id, rank)``. Every evaluation belongs to a stored ticket of the same drawing (``replace_predictions``
deletes a run's evaluations with its tickets), so equal counts already mean equal sets; the hash sum also
catches an evaluation left without its ticket. So a job after 300 new tickets reads the keys of the few
dates concerned, not of every stored ticket.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pandas as pd

from shiol_lib.domain.draws import draw_key
from shiol_lib.domain.game import CURRENT_MATRIX, PRIZE_TIERS
from shiol_lib.store.core import Store
from shiol_lib.store.rows import scalar

RESULT_COLUMNS = [
    "run_id",
    "target_draw_date",
    "rank",
    "n1",
    "n2",
    "n3",
    "n4",
    "n5",
    "pb",
    "score",
    "multiplier",
    "white_matches",
    "pb_match",
    "tier",
    "prize",
    "prize_power_play",
    "jackpot",
    "ticket_key",
    "draw_key",
]
_DRAWN = "d.n1, d.n2, d.n3, d.n4, d.n5"
_TICKET = "p.run_id, p.target_draw_date, p.rank, p.n1, p.n2, p.n3, p.n4, p.n5, p.pb, p.score"


def _ticket_key(t: str) -> str:
    """SQL for :func:`shiol_lib.analysis.evaluation.ticket_keys` of table alias ``t``."""
    numbers = " || '-' || ".join(f"lpad({t}.n{i}::VARCHAR, 2, '0')" for i in range(1, 6))
    return f"strftime({t}.target_draw_date, '%Y-%m-%d') || ':' || {numbers} || ':' || lpad({t}.pb::VARCHAR, 2, '0')"


# Known drawings with the key of their current row; the dates that can hold pending tickets (module doc);
# the tickets pending there, matched against their drawing.
_WITH = f"""
WITH drawn AS MATERIALIZED (
    SELECT d.draw_date, d.n1, d.n2, d.n3, d.n4, d.n5, d.pb, d.multiplier, k.draw_key
    FROM draws d JOIN evaluation_draw_keys k ON k.draw_date = d.draw_date
), pending_dates AS MATERIALIZED (
    SELECT t.target_draw_date
    FROM (SELECT target_draw_date, count(*) AS n, sum(hash(run_id, rank)) AS h FROM predictions
          WHERE target_draw_date BETWEEN $first AND $last GROUP BY target_draw_date) t
    JOIN drawn d ON d.draw_date = t.target_draw_date
    LEFT JOIN (SELECT target_draw_date, draw_key, count(*) AS n, sum(hash(run_id, rank)) AS h
               FROM evaluations GROUP BY target_draw_date, draw_key) e
      ON e.target_draw_date = t.target_draw_date AND e.draw_key = d.draw_key
    WHERE e.n IS DISTINCT FROM t.n OR e.h IS DISTINCT FROM t.h
), pending AS (
    SELECT {_TICKET}, d.multiplier, d.draw_key,
           (p.n1 IN ({_DRAWN}))::INTEGER + (p.n2 IN ({_DRAWN}))::INTEGER + (p.n3 IN ({_DRAWN}))::INTEGER
           + (p.n4 IN ({_DRAWN}))::INTEGER + (p.n5 IN ({_DRAWN}))::INTEGER AS white_matches,
           p.pb = d.pb AS pb_match, e.run_id IS NOT NULL AS replaces
    FROM predictions p
    JOIN drawn d ON d.draw_date = p.target_draw_date
    SEMI JOIN pending_dates s ON s.target_draw_date = p.target_draw_date
    LEFT JOIN (SELECT e.run_id, e.rank, e.draw_key FROM evaluations e
               SEMI JOIN pending_dates s ON s.target_draw_date = e.target_draw_date) e
      ON e.run_id = p.run_id AND e.rank = p.rank
    WHERE e.draw_key IS DISTINCT FROM d.draw_key
)"""
# The rule of prize_value: no tier, or the jackpot (no fixed prize) -> 0; with Power Play, the tier's own
# Power Play prize when it has one, else its prize times the multiplier; prizes in the current matrix only.
_SCORED = f"""
SELECT m.run_id, m.target_draw_date, m.rank, m.n1, m.n2, m.n3, m.n4, m.n5, m.pb, m.score, m.multiplier,
       m.white_matches, m.pb_match, t.label AS tier,
       CASE WHEN m.target_draw_date >= $current_first THEN coalesce(t.prize, 0) END AS prize,
       CASE WHEN m.target_draw_date >= $current_first AND m.multiplier IS NOT NULL THEN
            CASE WHEN t.prize IS NULL THEN 0 ELSE coalesce(t.power_play_prize, t.prize * m.multiplier) END
       END AS prize_power_play,
       m.white_matches = 5 AND m.pb_match AS jackpot, {_ticket_key("m")} AS ticket_key, m.draw_key, m.replaces
FROM pending m LEFT JOIN evaluation_prize_tiers t ON t.whites = m.white_matches AND t.powerball = m.pb_match"""
# Stored evaluations still made against their drawing's current row, in the same layout.
_STORED = f"""
SELECT {_TICKET}, d.multiplier, e.white_matches, e.pb_match, e.tier, e.prize, e.prize_power_play, e.jackpot,
       {_ticket_key("p")} AS ticket_key, e.draw_key, FALSE AS replaces
FROM evaluations e
JOIN predictions p ON p.run_id = e.run_id AND p.rank = e.rank
JOIN drawn d ON d.draw_date = p.target_draw_date AND d.draw_key = e.draw_key
WHERE p.target_draw_date BETWEEN $first AND $last"""
EVALUATE_SQL = _WITH + _SCORED
CURRENT_SQL = f"{_WITH}{_STORED}\nUNION ALL{_SCORED}\nORDER BY run_id, rank"
# A plain INSERT (three times faster than INSERT OR REPLACE for 1e6 rows) once the stale rows are gone.
_DELETE_SQL = """
DELETE FROM evaluations e USING evaluation_batch b WHERE b.replaces AND e.run_id = b.run_id AND e.rank = b.rank"""
_WRITE_SQL = """
INSERT INTO evaluations
SELECT run_id, rank, target_draw_date, draw_key, white_matches, pb_match, tier, jackpot, prize, prize_power_play,
       $evaluated_at
FROM evaluation_batch"""
_ALL_DATES = (date(1, 1, 1), date(9999, 12, 31))


def evaluate_pending(store: Store, *, evaluated_at: datetime | None = None) -> pd.DataFrame:
    """Evaluate every pending ticket (see the module doc) and store the results in the same transaction.

    Returns the new evaluations, ordered by run and rank, with :data:`RESULT_COLUMNS` (``tier`` is missing
    when no prize was won; ``prize`` and ``prize_power_play`` are missing outside the current matrix,
    ``prize_power_play`` also when no multiplier was drawn).
    """
    stamp = evaluated_at or datetime.now(UTC)
    with store.transaction() as conn:
        params = _register_rules(conn)
        conn.execute(f"CREATE TEMP TABLE evaluation_batch AS {EVALUATE_SQL}", params)
        if scalar(conn, "SELECT bool_or(replaces) FROM evaluation_batch"):
            conn.execute(_DELETE_SQL)
        conn.execute(_WRITE_SQL, {"evaluated_at": stamp})
        frame = conn.execute("SELECT * FROM evaluation_batch ORDER BY run_id, rank").df()
        conn.execute("DROP TABLE evaluation_batch")
    return _normalize(frame)


def count_pending(store: Store) -> int:
    """How many stored tickets are pending (nothing is written)."""
    with store.connect() as conn:
        return int(scalar(conn, f"SELECT count(*) FROM ({EVALUATE_SQL})", _register_rules(conn)))


def read_current_evaluations(
    store: Store, *, first_date: date | None = None, last_date: date | None = None
) -> pd.DataFrame:
    """Every stored ticket whose drawing is known, evaluated against its drawing's current row.

    Dated ``first_date``..``last_date``: the stored evaluations that still match it and the pending tickets
    scored on the fly (nothing is written). Columns :data:`RESULT_COLUMNS`, ordered by run and rank.
    """
    with store.connect() as conn:
        frame = conn.execute(CURRENT_SQL, _register_rules(conn, first_date, last_date)).df()
    return _normalize(frame)


def _register_rules(
    conn: duckdb.DuckDBPyConnection, first_date: date | None = None, last_date: date | None = None
) -> dict[str, object]:
    """Register the prize tiers and the drawings' current keys; the query parameters that go with them."""
    rows = conn.execute("SELECT draw_date, n1, n2, n3, n4, n5, pb, multiplier FROM draws").fetchall()
    keys = pd.DataFrame(
        {
            "draw_date": pd.to_datetime([r[0] for r in rows]).astype("datetime64[ns]"),
            "draw_key": [draw_key(r[0], r[1:7], r[7]) for r in rows],
        }
    )
    conn.register("evaluation_draw_keys_frame", keys)
    conn.execute(
        "CREATE OR REPLACE TEMP VIEW evaluation_draw_keys AS "
        "SELECT CAST(draw_date AS DATE) AS draw_date, draw_key FROM evaluation_draw_keys_frame"
    )
    conn.register("evaluation_prize_tiers", _prize_tiers())
    return {
        "first": first_date or _ALL_DATES[0],
        "last": last_date or _ALL_DATES[1],
        "current_first": CURRENT_MATRIX.first_date,
    }


def _prize_tiers() -> pd.DataFrame:
    """:data:`PRIZE_TIERS` as a table: white matches, Powerball matched, label, prize, Power Play prize."""
    return pd.DataFrame(
        {
            "whites": pd.array([t.whites for t in PRIZE_TIERS], dtype="int64"),
            "powerball": pd.array([t.powerball for t in PRIZE_TIERS], dtype="bool"),
            "label": [t.label for t in PRIZE_TIERS],
            "prize": pd.array([t.prize for t in PRIZE_TIERS], dtype="Int64"),
            "power_play_prize": pd.array([t.power_play_prize for t in PRIZE_TIERS], dtype="Int64"),
        }
    )


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """The dtypes of :func:`shiol_lib.analysis.evaluation.evaluate_tickets` on the result columns."""
    out = frame.reindex(columns=RESULT_COLUMNS)
    out["target_draw_date"] = pd.to_datetime(out["target_draw_date"]).astype("datetime64[ns]")
    numbers = ["n1", "n2", "n3", "n4", "n5", "pb", "white_matches"]
    out = out.astype(
        {
            **{c: "int64" for c in numbers},
            "score": "float64",
            "pb_match": "bool",
            "jackpot": "bool",
            "multiplier": "Int64",
            "prize": "Int64",
            "prize_power_play": "Int64",
            "tier": "string",
        }
    )
    return out
