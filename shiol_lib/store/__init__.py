"""The DuckDB store: the one package that speaks SQL.

``core`` holds connections, transactions, migrations, snapshot publishing and the draws table;
``snapshot`` the reader snapshot's files; ``runs`` the execution history; ``predictions`` tickets,
evaluations and model artefacts.
"""

from shiol_lib.store.core import ApplyResult, Conflict, Store, connect_snapshot, open_store, read_snapshot_draws
from shiol_lib.store.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION", "ApplyResult", "Conflict", "Store", "connect_snapshot", "open_store", "read_snapshot_draws",
]
