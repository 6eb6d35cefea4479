"""Taking turns on the store's file: DuckDB's file lock between processes, a per-file lock between threads.

DuckDB admits one read-write process per file. :func:`connect_with_retry` retries opening with backoff
while another process holds the lock, then names the holder in a :class:`StoreLockError`;
:func:`thread_lock` makes the threads of this process (a heartbeat beside a run) take turns.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import duckdb

from shiol_lib.errors import StoreError, StoreLockError

_LOCK_MESSAGE = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")

_THREAD_LOCKS: dict[str, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def thread_lock(path: Path) -> threading.RLock:
    """The one re-entrant lock of this process for the store file at ``path`` (resolved)."""
    key = str(Path(path).resolve())
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.RLock())


def connect_with_retry(path: Path, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    """A read-write connection to ``path``, retrying with backoff while another process holds the lock.

    Raises:
        StoreLockError: the lock did not come free within ``lock_timeout_s`` (names the holder's PID).
        StoreError: the file cannot be opened for another reason (not a DuckDB file, no access).
    """
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as err:
            if _LOCK_MESSAGE not in str(err):
                raise StoreError(f"cannot open the store {path}: {err}") from err
            if time.monotonic() + delay > deadline:
                raise _lock_error(path, err, lock_timeout_s) from err
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        except duckdb.Error as err:
            raise StoreError(
                f"cannot open the store {path}: {err}; check SHIOL_DB_PATH points at a DuckDB file"
            ) from err


def _lock_error(path: Path, err: Exception, waited: float) -> StoreLockError:
    match = _HOLDER.search(str(err))
    holder = f"PID {match['pid']} ({match['exe']})" if match else None
    who = f"held by {holder}" if holder else "held by another process"
    return StoreLockError(
        f"the store {path} is locked, {who}, and did not come free within {waited:g} s; "
        "wait for that process to finish or stop it, then retry (SHIOL_LOCK_TIMEOUT_S sets the wait)",
        path=str(path),
        holder=holder,
    )
