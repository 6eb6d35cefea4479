"""The DuckDB store: the one module that speaks SQL.

DuckDB admits one read-write process per file, and a reader blocks the writer too. So every
connection here is short-lived (held only inside a ``with`` block), opening retries with backoff on
lock errors and then names the holder (:mod:`shiol_lib.store.locks`), and each committed write
republishes a read-only snapshot (copy, then atomic rename) for readers that linger, such as JupyterLab
(:func:`shiol_lib.store.snapshot.connect_snapshot`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from shiol_lib.domain.draws import DRAW_COLUMNS, Draw
from shiol_lib.errors import SnapshotStaleError, StoreError
from shiol_lib.store.locks import connect_with_retry, thread_lock
from shiol_lib.store.rows import scalar
from shiol_lib.store.schema import MIGRATIONS, SCHEMA_VERSION
from shiol_lib.store.snapshot import read_draws_frame, remove_dead_temps, stale_marker_for

if TYPE_CHECKING:  # pandas is imported where a frame is built: `shiol status` stays quick
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Conflict:
    """A source offered other values for a drawing already stored; the stored values were kept."""

    draw_date: date
    source: str
    stored: str
    offered: str


@dataclass
class ApplyResult:
    """What writing one batch of draws did."""

    inserted: list[date] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)


# Set by a job in its step kernels' environment (jobs/lifecycle.py): the steps' stores defer publishing.
# Not a SHIOL_* setting: the kernels' SHIOL_* variables are exactly the job's settings.
JOB_PUBLISHES_ENV = "WORKBENCH_JOB_PUBLISHES_SNAPSHOT"


class Store:
    """A DuckDB file plus its reader snapshot. Construct with :func:`open_store`."""

    def __init__(
        self, path: Path, snapshot_path: Path, *, lock_timeout_s: float = 30.0, defer_publish: bool = False
    ) -> None:
        self.path = Path(path)
        self.snapshot_path = Path(snapshot_path)
        self.lock_timeout_s = lock_timeout_s
        self.defer_publish = defer_publish  # a job's step kernel (JOB_PUBLISHES_ENV), or deferred_publishing()
        self._held: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (thread, connection) inside held()

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-write connection; waits for the file lock up to ``lock_timeout_s``.

        DuckDB's file lock only keeps other processes out; threads of this process (a heartbeat
        beside a run) take turns through a per-file lock, so their transactions never conflict.
        """
        held = self._held
        if held is not None and held[0] == threading.get_ident():
            yield held[1]  # inside held(): the block's one connection
            return
        with thread_lock(self.path):
            conn = connect_with_retry(self.path, self.lock_timeout_s)
            try:
                yield conn
            finally:
                conn.close()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Every :meth:`connect` of this thread inside the block uses one connection (opening one costs ~20 ms).

        For a few reads in a row (a planner cycle); other threads wait for the block as for any connection.
        """
        if self._held is not None and self._held[0] == threading.get_ident():
            yield
            return
        with self.connect() as conn:
            self._held = (threading.get_ident(), conn)
            try:
                yield
            finally:
                self._held = None

    @contextmanager
    def transaction(self, *, publish: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside ``BEGIN``/``COMMIT``; rolls back on error, then republishes the snapshot.

        ``publish=False`` for writes no reader needs to see at once (heartbeats, job locks): they reach
        the snapshot with the next published write. A store opened with ``defer_publish`` (a job's step
        kernel) marks the snapshot stale and leaves the publishing to the job. A ``<snapshot>.stale``
        marker is written before the commit and removed once the snapshot is republished, so a crash or a
        failure in between leaves a snapshot that says it is stale.
        """
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
                if publish:
                    self._mark_stale("a write was being committed")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except duckdb.Error as err:  # e.g. no room on the disk even for the write-ahead log
                if publish:  # nothing changed: the snapshot is as current as it was
                    with contextlib.suppress(OSError):
                        self.stale_marker.unlink(missing_ok=True)
                raise StoreError(
                    f"the change could not be committed to the store {self.path} "
                    f"({str(err).splitlines()[0]}); nothing of it was written"
                ) from err
            if publish and not self.defer_publish:
                self._publish_snapshot(conn)

    def publish(self) -> None:
        """Republish the reader snapshot now (what a deferred write left stale)."""
        with self.connect() as conn:
            self._publish_snapshot(conn)

    @contextmanager
    def deferred_publishing(self, *, publish_at_end: bool = True) -> Iterator[None]:
        """Writes inside the block only mark the snapshot stale; it is republished once when the block ends.

        With ``publish_at_end`` false (or when the block raises) the next published write does it. In a
        store that defers already (a step kernel's) the block changes nothing.
        """
        if self.defer_publish:
            yield
            return
        self.defer_publish = True
        try:
            yield
        finally:
            self.defer_publish = False
        if publish_at_end and self.stale_marker.exists():
            self.publish()

    @property
    def stale_marker(self) -> Path:
        """The file that says the snapshot is older than the store (present between commit and publish)."""
        return stale_marker_for(self.snapshot_path)

    def _mark_stale(self, reason: str) -> None:
        try:
            self.stale_marker.write_text(f"{reason} at {datetime.now().astimezone().isoformat()}\n")
        except OSError as err:  # a full disk: the publish below reports it
            log.debug("could not write %s: %s", self.stale_marker, err)

    def _publish_snapshot(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Copy the database to ``<snapshot>.<pid>.tmp`` and rename it over the snapshot (atomic).

        Once a checkpoint has moved the write-ahead log into the file, the file itself is copied: the cost
        of a file copy, where copying the database table by table grows with every stored row (0.74 s for
        a store of 1e6 tickets, against 15 ms). This process holds the file lock, so nothing writes
        meanwhile. When the log could not be emptied, the database is copied table by table as before.
        The copy gets a ``snapshot_info`` table (which store, which schema, when). Temp files left by dead
        processes are removed first. A failure after the commit raises :class:`SnapshotStaleError`: the
        data is committed, the snapshot is stale (and marked so).
        """
        remove_dead_temps(self.snapshot_path)
        tmp = self.snapshot_path.with_name(f"{self.snapshot_path.name}.{os.getpid()}.tmp")
        try:
            tmp.unlink(missing_ok=True)
            if self._checkpoint(conn):
                shutil.copyfile(self.path, tmp)
            else:
                source_db = scalar(conn, "SELECT current_database()")
                conn.execute(f"ATTACH '{_sql_path(tmp)}' AS shiol_snapshot")
                try:
                    conn.execute(f'COPY FROM DATABASE "{source_db}" TO shiol_snapshot')
                finally:
                    conn.execute("DETACH shiol_snapshot")
            with duckdb.connect(str(tmp)) as copy:
                copy.execute(
                    "CREATE OR REPLACE TABLE snapshot_info AS SELECT ? AS store_path, ? AS schema_version, "
                    "now() AS published_at",
                    [str(self.path), _schema_version(conn)],
                )
            os.replace(tmp, self.snapshot_path)
        except (duckdb.Error, OSError) as err:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self._mark_stale(f"publishing failed: {err}")
            raise SnapshotStaleError(
                f"the change was committed to the store {self.path}, but the reader snapshot "
                f"{self.snapshot_path} could not be republished ({str(err).splitlines()[0]}); it is stale "
                "(marked by its .stale file) until the next write succeeds"
            ) from err
        with contextlib.suppress(OSError):
            self.stale_marker.unlink(missing_ok=True)

    def _checkpoint(self, conn: duckdb.DuckDBPyConnection) -> bool:
        """Checkpoint; whether every committed change is now in the database file (the log is empty)."""
        try:
            conn.execute("CHECKPOINT")
        except duckdb.FatalException:
            raise  # the database is invalidated (a full disk): copying it table by table would only say so
        except duckdb.Error as err:
            log.debug("checkpoint of %s refused (%s); snapshot copied table by table", self.path, err)
            return False
        wal = self.path.with_name(f"{self.path.name}.wal")
        return not wal.exists() or wal.stat().st_size == 0

    # -- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the file (0 for a new, empty file)."""
        with self.connect() as conn:
            return _schema_version(conn)

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Apply the missing migrations up to ``target`` in one transaction; return the version."""
        with self.connect() as conn:
            current = _schema_version(conn)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {current}, newer than this workbench "
                    f"knows ({SCHEMA_VERSION}); upgrade the workbench"
                )
            if current >= target:
                return current
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                for version in range(current + 1, target + 1):
                    conn.execute(MIGRATIONS[version - 1])
                    conn.execute("INSERT INTO schema_version VALUES (?, now())", [version])
                    log.info("store %s migrated to schema version %d", self.path, version)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._publish_snapshot(conn)
            return target

    # -- draws -------------------------------------------------------------------------------

    def read_draws(self) -> pd.DataFrame:
        """All stored draws as the canonical DataFrame (see :data:`draws.DRAW_COLUMNS`)."""
        with self.connect() as conn:
            return read_draws_frame(conn)

    def draw_dates(self) -> list[date]:
        """Dates of all stored draws, oldest first."""
        with self.connect() as conn:
            return [row[0] for row in conn.execute("SELECT draw_date FROM draws ORDER BY draw_date").fetchall()]

    def count_draws(self) -> int:
        """Number of stored draws."""
        with self.connect() as conn:
            return int(scalar(conn, "SELECT count(*) FROM draws"))

    def apply_draws(self, draws: Sequence[Draw], *, source: str, fetched_at: datetime) -> ApplyResult:
        """Insert new draws in one transaction; identical ones are no-ops, different ones conflicts.

        A conflict keeps the stored values and is recorded in ``draw_conflicts``; nothing is
        overwritten.
        """
        result = ApplyResult()
        if not draws:
            return result
        with self.transaction() as conn:
            stored = _stored_by_date(conn, [d.draw_date for d in draws])
            fresh = []
            for draw in sorted(draws):
                existing = stored.get(draw.draw_date)
                if existing is None:
                    fresh.append(draw)
                elif existing == draw:
                    result.unchanged += 1
                else:
                    result.conflicts.append(Conflict(draw.draw_date, source, existing.as_text(), draw.as_text()))
            if fresh:
                import pandas as pd

                rows = pd.DataFrame(
                    [(d.draw_date, *d.whites, d.powerball, d.multiplier, source, fetched_at) for d in fresh],
                    columns=[*DRAW_COLUMNS, "source", "fetched_at"],
                )
                rows["multiplier"] = rows["multiplier"].astype("Int64")
                conn.register("incoming_draws", rows)
                conn.execute(
                    f"INSERT INTO draws SELECT {', '.join(DRAW_COLUMNS)}, source, fetched_at FROM incoming_draws"
                )
                conn.unregister("incoming_draws")
                result.inserted = [d.draw_date for d in fresh]
            for conflict in result.conflicts:
                conn.execute(
                    "INSERT INTO draw_conflicts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [conflict.draw_date, conflict.source, conflict.stored, conflict.offered, fetched_at],
                )
        return result

    def record_update(
        self,
        update_id: str,
        started_at: datetime,
        finished_at: datetime,
        *,
        offline: bool,
        counts: dict[str, int],
        report_json: str,
    ) -> None:
        """Append one row to the ``data_updates`` audit table."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO data_updates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    update_id,
                    started_at,
                    finished_at,
                    offline,
                    counts["new"],
                    counts["backfilled"],
                    counts["rejected"],
                    counts["conflicts"],
                    report_json,
                ],
            )


def open_store(
    db_path: Path, snapshot_path: Path | None = None, *, lock_timeout_s: float = 30.0, defer_publish: bool = False
) -> Store:
    """Open (creating its folder if needed) and migrate the store at ``db_path``.

    The reader snapshot defaults to ``<name>.snapshot.duckdb`` beside it. ``defer_publish``: see
    :class:`Store` (a job's step kernels).
    """
    db_path = Path(db_path)
    snapshot_path = Path(snapshot_path) if snapshot_path else db_path.with_suffix(".snapshot.duckdb")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the store folder {db_path.parent}: {err.strerror}") from err
    store = Store(db_path, snapshot_path, lock_timeout_s=lock_timeout_s, defer_publish=defer_publish)
    store.migrate()
    return store


def _schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    if not scalar(conn, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"):
        return 0
    return int(scalar(conn, "SELECT coalesce(max(version), 0) FROM schema_version"))


def _stored_by_date(conn: duckdb.DuckDBPyConnection, dates: Sequence[date]) -> dict[date, Draw]:
    rows = conn.execute(
        "SELECT draw_date, n1, n2, n3, n4, n5, pb, multiplier FROM draws WHERE draw_date IN (SELECT unnest(?::DATE[]))",
        [list(dates)],
    ).fetchall()
    return {r[0]: Draw(r[0], tuple(r[1:6]), r[6], r[7]) for r in rows}


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
