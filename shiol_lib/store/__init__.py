"""The DuckDB store: the one package that speaks SQL.

``core`` holds connections, transactions, migrations, snapshot publishing and the draws table;
``locks`` the file and thread locks; ``snapshot`` the reader snapshot's files and its draws;
``runs`` the execution history; ``predictions`` tickets, evaluations and model artefacts.
"""

from shiol_lib.store.core import ApplyResult, Conflict, Store, open_store
from shiol_lib.store.schema import SCHEMA_VERSION
from shiol_lib.store.snapshot import connect_snapshot, read_snapshot_draws

__all__ = [
    "SCHEMA_VERSION",
    "ApplyResult",
    "Conflict",
    "Store",
    "connect_snapshot",
    "open_store",
    "read_snapshot_draws",
]
