"""``scalar``: the one value of an aggregate query, and a clear error when a query returns no row."""

from __future__ import annotations

import duckdb
import pytest

from shiol_lib.errors import StoreError
from shiol_lib.store.rows import scalar


def test_the_first_column_of_the_first_row_with_parameters():
    with duckdb.connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT * FROM range(5) r(x)")
        assert scalar(conn, "SELECT count(*) FROM t") == 5
        assert scalar(conn, "SELECT max(x), min(x) FROM t WHERE x < ?", [3]) == 2
        assert scalar(conn, "SELECT count(*) FROM t WHERE x >= $low", {"low": 4}) == 1


def test_no_row_is_a_store_error_naming_the_query():
    with duckdb.connect() as conn, pytest.raises(StoreError, match="no row for 'SELECT 1 WHERE false'"):
        scalar(conn, "SELECT 1 WHERE false")
