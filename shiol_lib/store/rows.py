"""Reading single values back from DuckDB: the one place that checks a query returned its row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from shiol_lib.errors import StoreError


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    """The first column of the first row of ``sql`` (an aggregate such as ``count(*)`` always has one).

    Raises:
        StoreError: naming the query when it returned no row.
    """
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise StoreError(f"the store returned no row for {sql!r}")
    return row[0]
