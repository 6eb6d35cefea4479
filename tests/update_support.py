"""Helpers for in-process update tests: a seeded store copied per test, fast HTTP clients, and the
draws table's checksum (every column but ``fetched_at``)."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from fakesources import MUSL_API_KEY, MuslServer, NyServer

from shiol_lib.ingest.sources import HttpClient, MuslSource, NySource
from shiol_lib.ingest.update import update_draws
from shiol_lib.store import Store, open_store

# After the three NEWER_DRAWS (2024-07-01, -03, -06), before the next drawing: an update of the
# bundled store then wants those three and the six MISSING_DATES.
NOW = datetime(2024, 7, 8, 12, 0, tzinfo=UTC)
BUNDLED_COUNT = 1647


def seed_template(folder: Path) -> Path:
    """A store in ``folder`` seeded from the bundled snapshot (copy it per test with :func:`copy_store`)."""
    store = open_store(folder / "shiol.duckdb", folder / "shiol.snapshot.duckdb", lock_timeout_s=5)
    report = update_draws(store, musl=None, ny=None, offline=True, now=NOW)
    assert report.seeded == BUNDLED_COUNT and not report.rejected
    return folder


def copy_store(template: Path, tmp_path: Path) -> Store:
    """A fresh copy of the seeded store, in ``tmp_path``."""
    shutil.copytree(template, tmp_path / "var")
    return Store(tmp_path / "var" / "shiol.duckdb", tmp_path / "var" / "shiol.snapshot.duckdb", lock_timeout_s=5)


def client(**overrides: float) -> HttpClient:
    """A client that gives up fast (no retries unless asked)."""
    options: dict[str, float] = {"timeout_s": 2.0, "retries": 0, "backoff_s": 0.01, "max_retry_after_s": 0.5}
    options.update(overrides)
    return HttpClient(**options)  # type: ignore[arg-type]


def musl_source(server: MuslServer, **overrides: float) -> MuslSource:
    """A MUSL source with the right key, pointed at ``server``."""
    return MuslSource(server.url, MUSL_API_KEY, client(**overrides))


def ny_source(server: NyServer, **overrides: float) -> NySource:
    """A NY Open Data source pointed at ``server``."""
    return NySource(server.url, client(**overrides))


def draws_checksum(store: Store) -> str:
    """SHA-256 of every stored draw, every column but ``fetched_at``, in date order."""
    with store.connect() as conn:
        rows = conn.execute("SELECT * EXCLUDE (fetched_at) FROM draws ORDER BY draw_date").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def update_count(store: Store) -> int:
    """Rows in ``data_updates`` (every finished update records one)."""
    with store.connect() as conn:
        return conn.execute("SELECT count(*) FROM data_updates").fetchone()[0]


def recorded_report(store: Store, update_id: str) -> dict[str, object]:
    """The report an update recorded in ``data_updates``."""
    with store.connect() as conn:
        row = conn.execute("SELECT report_json FROM data_updates WHERE update_id = ?", [update_id]).fetchone()
    assert row is not None, f"update {update_id} recorded no data_updates row"
    return json.loads(row[0])
