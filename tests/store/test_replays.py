"""Kept replays in the store: read by key, written in one transaction, counted and deleted; a new table."""

from __future__ import annotations

from datetime import date

import pytest

from shiol_lib.store import Store
from shiol_lib.store import predictions as replay_table

ROWS = [
    ("k1", "refit", date(2024, 6, 1), b"\x00model\xff"),
    ("k2", "tickets", date(2024, 6, 3), b"{}"),
    ("k3", "tickets", date(2024, 6, 5), b"[1, 2]"),
]


def test_kept_replays_are_read_by_key_byte_for_byte(store: Store) -> None:
    assert replay_table.read_replays(store, ["k1"]) == {}
    assert replay_table.save_replays(store, ROWS) == 3
    assert replay_table.read_replays(store, ["k3", "k1", "k1", "nope"]) == {"k1": b"\x00model\xff", "k3": b"[1, 2]"}
    assert replay_table.read_replays(store, []) == {}
    assert replay_table.count_replays(store) == {"refit": 1, "tickets": 2}


def test_a_key_kept_again_is_replaced_and_kinds_are_checked(store: Store) -> None:
    replay_table.save_replays(store, ROWS)
    replay_table.save_replays(store, [("k2", "tickets", date(2024, 6, 3), b"new")])
    assert replay_table.read_replays(store, ["k2"]) == {"k2": b"new"}
    with pytest.raises(ValueError, match="kind 'model'"):
        replay_table.save_replays(store, [("k9", "model", date(2024, 6, 3), b"")])
    assert replay_table.read_replays(store, ["k9"]) == {} and replay_table.save_replays(store, []) == 0


def test_kept_replays_can_be_deleted_by_date(store: Store) -> None:
    replay_table.save_replays(store, ROWS)
    assert replay_table.delete_replays(store, before=date(2024, 6, 3)) == 1
    assert replay_table.count_replays(store) == {"refit": 0, "tickets": 2}
    assert replay_table.delete_replays(store) == 2
    assert replay_table.count_replays(store) == {"refit": 0, "tickets": 0}
