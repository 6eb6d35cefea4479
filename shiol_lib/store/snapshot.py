"""The reader snapshot's files: a read-only connection, the ``.stale`` marker, dead processes' temp copies.

Also the draws frame read from a connection (the snapshot's or the live store's).

:meth:`shiol_lib.store.core.Store.transaction` publishes the snapshot; readers that linger (JupyterLab)
open it here, and every publish first removes the temp copies that dead processes left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from shiol_lib.domain.draws import DRAW_COLUMNS, normalize_draw_frame
from shiol_lib.errors import StoreError

if TYPE_CHECKING:  # pandas is imported where a frame is built: `shiol status` stays quick
    import pandas as pd

log = logging.getLogger(__name__)


def connect_snapshot(snapshot_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published snapshot, safe to keep open (JupyterLab).

    Logs a warning when the snapshot is marked stale (a write committed but not yet republished);
    ``SELECT * FROM snapshot_info`` says which store and schema it copies and when.
    """
    path = Path(snapshot_path).resolve()
    if not path.exists():
        raise StoreError(f"no store snapshot at {path}; run 'shiol update-data' to create the store")
    marker = stale_marker_for(path)
    if marker.exists():
        log.warning("the snapshot %s is stale: %s", path, marker.read_text(errors="replace").strip())
    return duckdb.connect(str(path), read_only=True)


def stale_marker_for(snapshot_path: Path) -> Path:
    """``<snapshot>.stale``: present while the snapshot is older than the store."""
    return Path(snapshot_path).with_name(Path(snapshot_path).name + ".stale")


def remove_dead_temps(snapshot_path: Path) -> None:
    """Delete ``<snapshot>.<pid>.tmp`` files whose process is gone (they would keep a full disk full)."""
    for tmp in Path(snapshot_path).parent.glob(f"{Path(snapshot_path).name}.*.tmp"):
        pid = tmp.name.removeprefix(Path(snapshot_path).name + ".").removesuffix(".tmp")
        if pid.isascii() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("removed %s, left by dead process %s", tmp, pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_snapshot_draws(snapshot_path: Path) -> pd.DataFrame:
    """The draws of the published snapshot (read-only: never blocks the writer)."""
    with connect_snapshot(snapshot_path) as conn:
        return read_draws_frame(conn)


def read_draws_frame(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The ``draws`` table of ``conn`` as a normalized draws frame, in date order."""
    frame = conn.execute(f"SELECT {', '.join(DRAW_COLUMNS)} FROM draws ORDER BY draw_date").df()
    return normalize_draw_frame(frame)
