"""Tickets, their evaluations and the artefacts model steps persist, all keyed by run id.

Also the kept results of walk-forward replays (step 4), keyed by what determines them: read before a
backtest, written after it. The keys and bytes are the analysis's (``shiol_lib.analysis.replay``); the
rows are derived data: deleting any of them costs a recomputation, never a different result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiol_lib.domain.draws import TICKET_COLUMNS
from shiol_lib.store.core import Store
from shiol_lib.store.rows import scalar
from shiol_lib.store.runs import refuse_dead_run
from shiol_lib.store.snapshot import connect_snapshot

if TYPE_CHECKING:
    import pandas as pd  # at run time only where a frame is made: `shiol runs verify` needs no pandas

EVALUATION_COLUMNS = [
    "run_id",
    "rank",
    "target_draw_date",
    "draw_key",
    "white_matches",
    "pb_match",
    "tier",
    "jackpot",
    "prize",
    "prize_power_play",
]


def replace_predictions(store: Store, run_id: str, target_draw_date: date, tickets: pd.DataFrame) -> int:
    """Store a run's tickets, replacing any it stored before (idempotent per run); returns the count."""
    missing = [c for c in TICKET_COLUMNS if c not in tickets.columns]
    if missing:
        raise ValueError(f"tickets lack the columns {missing}")
    rows = tickets[TICKET_COLUMNS].copy()
    rows.insert(0, "target_draw_date", target_draw_date)
    rows.insert(0, "run_id", run_id)
    rows["created_at"] = datetime.now(UTC)
    with store.transaction() as conn:
        refuse_dead_run(conn, run_id)
        conn.execute("DELETE FROM evaluations WHERE run_id = ?", [run_id])
        conn.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
        conn.register("incoming_tickets", rows)
        conn.execute(
            "INSERT INTO predictions SELECT run_id, target_draw_date, rank, n1, n2, n3, n4, n5, pb, score, "
            "created_at FROM incoming_tickets"
        )
        conn.unregister("incoming_tickets")
    return len(rows)


def discard_predictions(store: Store, run_id: str) -> int:
    """Delete a run's tickets and their evaluations (a crashed run's); returns how many tickets went."""
    with store.transaction() as conn:
        count = scalar(conn, "SELECT count(*) FROM predictions WHERE run_id = ?", [run_id])
        conn.execute("DELETE FROM evaluations WHERE run_id = ?", [run_id])
        conn.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
    return int(count)


def read_predictions(store: Store, run_id: str | None = None) -> pd.DataFrame:
    """Stored tickets (of one run, or all), ordered by run and rank."""
    return _read_rows(store, "run_id, target_draw_date, rank, n1, n2, n3, n4, n5, pb, score", "predictions", run_id)


def read_evaluations(store: Store, run_id: str | None = None) -> pd.DataFrame:
    """Stored evaluations (of one run, or all), ordered by run and rank."""
    return _read_rows(store, f"{', '.join(EVALUATION_COLUMNS)}, evaluated_at", "evaluations", run_id)


def read_snapshot_predictions(snapshot_path: Path, run_id: str | None = None) -> pd.DataFrame:
    """Stored tickets from the published snapshot (read-only: never blocks the writer; JupyterLab)."""
    with connect_snapshot(snapshot_path) as conn:
        return _query_rows(conn, "run_id, target_draw_date, rank, n1, n2, n3, n4, n5, pb, score", "predictions", run_id)


def _read_rows(store: Store, columns: str, table: str, run_id: str | None) -> pd.DataFrame:
    with store.connect() as conn:
        return _query_rows(conn, columns, table, run_id)


def _query_rows(conn: Any, columns: str, table: str, run_id: str | None) -> pd.DataFrame:
    import pandas as pd

    where, params = (" WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
    frame = conn.execute(f"SELECT {columns} FROM {table}{where} ORDER BY run_id, rank", params).df()
    frame["target_draw_date"] = pd.to_datetime(frame["target_draw_date"])
    return frame


def save_artifact(store: Store, run_id: str, kind: str, payload: object, *, data_hash: str | None = None) -> None:
    """Store a JSON-serialisable artefact of a run (replacing the same kind of the same run)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    with store.transaction() as conn:
        refuse_dead_run(conn, run_id)
        conn.execute(
            "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
            [run_id, kind, data_hash, text, datetime.now(UTC)],
        )


def save_artifacts(store: Store, run_id: str, payloads: dict[str, object], *, data_hash: str | None = None) -> None:
    """Store several artefacts of a run in one transaction: all of them or none."""
    texts = {kind: json.dumps(payload, sort_keys=True, default=str) for kind, payload in payloads.items()}
    with store.transaction() as conn:
        for kind, text in texts.items():
            conn.execute(
                "INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                [run_id, kind, data_hash, text, datetime.now(UTC)],
            )


def load_artifact(store: Store, run_id: str, kind: str) -> tuple[Any, str | None]:
    """An artefact's payload (decoded JSON) and data hash; raises ``LookupError`` naming what is missing."""
    with store.connect() as conn:
        row = conn.execute(
            "SELECT payload, data_hash FROM artifacts WHERE run_id = ? AND kind = ?", [run_id, kind]
        ).fetchone()
    if row is None:
        raise LookupError(f"run {run_id} stored no {kind!r} artefact; run the step that makes it first")
    return json.loads(row[0]), row[1]


def run_metrics(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """The key metrics each step stored as a ``metrics.<step>`` artefact, by step."""
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT kind, payload FROM artifacts WHERE run_id = ? AND kind LIKE 'metrics.%' ORDER BY kind", [run_id]
        ).fetchall()
    return {kind.removeprefix("metrics."): json.loads(payload) for kind, payload in rows}


def output_hashes(store: Store, run_id: str) -> dict[str, str]:
    """SHA-256 of each output a run stored (tickets, each artefact), excluding ids and timestamps."""
    hashes = {}
    with store.connect() as conn:
        tickets = conn.execute(
            "SELECT target_draw_date, rank, n1, n2, n3, n4, n5, pb, round(score, 9) FROM predictions "
            "WHERE run_id = ? ORDER BY rank",
            [run_id],
        ).fetchall()
        artifacts = conn.execute(
            "SELECT kind, payload FROM artifacts WHERE run_id = ? ORDER BY kind", [run_id]
        ).fetchall()
    if tickets:
        hashes["predictions"] = _sha(json.dumps(tickets, default=str))
    for kind, payload in artifacts:
        hashes[f"artifact:{kind}"] = _sha(payload)
    return hashes


def all_output_hashes(store: Store, run_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """:func:`output_hashes` of many runs from one connection and two queries (``shiol runs verify``)."""
    wanted = set(run_ids)
    tickets: dict[str, list[tuple[Any, ...]]] = {}
    hashes: dict[str, dict[str, str]] = {run_id: {} for run_id in wanted}
    if not wanted:
        return hashes
    ids = sorted(wanted)
    with store.connect() as conn:
        rows = conn.execute(
            "SELECT run_id, target_draw_date, rank, n1, n2, n3, n4, n5, pb, round(score, 9) FROM predictions "
            "WHERE list_contains(?::VARCHAR[], run_id) ORDER BY run_id, rank",
            [ids],
        ).fetchall()
        artifacts = conn.execute(
            "SELECT run_id, kind, payload FROM artifacts WHERE list_contains(?::VARCHAR[], run_id) "
            "ORDER BY run_id, kind",
            [ids],
        ).fetchall()
    for run_id, *ticket in rows:
        if run_id in wanted:
            tickets.setdefault(run_id, []).append(tuple(ticket))
    for run_id, found in tickets.items():
        hashes[run_id]["predictions"] = _sha(json.dumps(found, default=str))
    for run_id, kind, payload in artifacts:
        if run_id in wanted:
            hashes[run_id][f"artifact:{kind}"] = _sha(payload)
    return hashes


def output_digests(store: Store) -> dict[str, str]:
    """A fingerprint of each run's stored outputs (tickets and artefacts), computed by DuckDB's SHA-256.

    Not the hashes a manifest records (:func:`output_hashes`): it changes whenever any of the rows those
    hashes cover changes, so ``shiol runs verify --since-last`` hashes again only the runs whose outputs
    changed since the last verification.
    """
    digests: dict[str, str] = {}
    with store.connect() as conn:
        tickets = conn.execute(
            "SELECT run_id, sha256(string_agg(concat_ws(',', target_draw_date, rank, n1, n2, n3, n4, n5, pb, "
            "round(score, 9)), ';' ORDER BY rank)) FROM predictions GROUP BY run_id"
        ).fetchall()
        artifacts = conn.execute(
            "SELECT run_id, sha256(string_agg(length(kind) || ':' || kind || sha256(payload), ';' ORDER BY kind)) "
            "FROM artifacts GROUP BY run_id"
        ).fetchall()
    for run_id, digest in tickets:
        digests[run_id] = f"p{digest}"
    for run_id, digest in artifacts:
        digests[run_id] = f"{digests.get(run_id, '')}a{digest}"
    return digests


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- kept replays (step 4) ------------------------------------------------------------------------

REPLAY_KINDS = ("refit", "tickets")


def read_replays(store: Store, keys: Sequence[str]) -> dict[str, bytes]:
    """The kept payloads of those ``keys`` that the store holds (one query)."""
    if not keys:
        return {}
    import pandas as pd

    wanted = pd.DataFrame({"replay_key": list(dict.fromkeys(keys))})
    with store.connect() as conn:
        conn.register("wanted_replays", wanted)
        rows = conn.execute(
            "SELECT r.replay_key, r.payload FROM backtest_replays r JOIN wanted_replays w USING (replay_key)"
        ).fetchall()
        conn.unregister("wanted_replays")
    return {key: bytes(payload) for key, payload in rows}


def save_replays(store: Store, entries: Iterable[tuple[str, str, date, bytes]]) -> int:
    """Keep ``(key, kind, draw_date, payload)`` rows in one transaction (a key kept already is replaced)."""
    rows = list(entries)
    for key, kind, _, _ in rows:
        if kind not in REPLAY_KINDS:
            raise ValueError(f"replay {key[:12]}... has kind {kind!r}; known: {', '.join(REPLAY_KINDS)}")
    if not rows:
        return 0
    now = datetime.now(UTC)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO backtest_replays VALUES (?, ?, ?, ?, ?)",
            [[key, kind, day, payload, now] for key, kind, day, payload in rows],
        )
    return len(rows)


def count_replays(store: Store) -> dict[str, int]:
    """Kept rows by kind (``refit``, ``tickets``)."""
    with store.connect() as conn:
        rows = conn.execute("SELECT kind, count(*) FROM backtest_replays GROUP BY kind").fetchall()
    return {kind: 0 for kind in REPLAY_KINDS} | {kind: int(n) for kind, n in rows}


def delete_replays(store: Store, *, before: date | None = None) -> int:
    """Delete kept rows (those of drawings dated before ``before``, or all); returns how many went."""
    with store.transaction() as conn:
        where, params = ("WHERE draw_date < ?", [before]) if before is not None else ("", [])
        count = scalar(conn, f"SELECT count(*) FROM backtest_replays {where}", params)
        conn.execute(f"DELETE FROM backtest_replays {where}", params)
    return int(count)
