"""``shiol runs missed``: the slots and drawings the store records as missed, in ET and UTC."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from shiol_lib.cli.main import cli
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store
from shiol_lib.store.jobs import record_missed

ET = ZoneInfo("America/New_York")
RECORDED = datetime(2024, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A real store in ``tmp_path`` with a missed drawing (summer time) and two missed slots (winter)."""
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    settings = load_settings()
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    record_missed(
        store,
        job="pipeline",
        slot=datetime(2024, 7, 1, 23, 29, tzinfo=ET),
        draw_date=date(2024, 7, 1),
        kind="draw",
        at=RECORDED,
    )
    record_missed(
        store, job="evaluation", slot=datetime(2024, 12, 2, 6, 15, tzinfo=ET), draw_date=None, kind="slot", at=RECORDED
    )
    record_missed(
        store, job="evaluation", slot=datetime(2024, 12, 2, 12, 15, tzinfo=ET), draw_date=None, kind="slot", at=RECORDED
    )
    return tmp_path


def shiol(*args: str):
    result = CliRunner().invoke(cli, ["runs", "missed", *args], prog_name="shiol")
    assert result.exit_code == 0, result.output
    return result.stdout


def test_text_shows_each_slot_in_et_and_utc_side_by_side(home):
    lines = shiol().splitlines()
    assert lines[0].split()[:3] == ["kind", "job", "slot"]
    assert len(lines) == 4  # header + 3, newest slot first
    newest, _, draw = lines[1:]
    assert "evaluation" in newest and "2024-12-02 12:15 EST" in newest and "2024-12-02 17:15 UTC" in newest
    assert draw.startswith("draw  pipeline")
    assert "2024-07-01 23:29 EDT" in draw and "2024-07-02 03:29 UTC" in draw and "2024-07-01" in draw
    assert "2024-12-03 12:00 UTC" in draw  # when it was recorded


def test_json_gives_iso_8601_instants_with_their_offset(home):
    rows = json.loads(shiol("--json"))
    assert [r["job"] for r in rows] == ["evaluation", "evaluation", "pipeline"]
    assert rows[2] == {
        "job": "pipeline",
        "kind": "draw",
        "draw_date": "2024-07-01",
        "slot_et": "2024-07-01T23:29:00-04:00",
        "slot_utc": "2024-07-02T03:29:00+00:00",
        "recorded_at": "2024-12-03T12:00:00+00:00",
    }
    assert rows[0]["slot_et"] == "2024-12-02T12:15:00-05:00" and rows[0]["draw_date"] is None
    for row in rows:
        assert datetime.fromisoformat(row["slot_et"]) == datetime.fromisoformat(row["slot_utc"])


def test_job_kind_and_limit_filter(home):
    assert [r["slot_et"] for r in json.loads(shiol("--json", "--job", "evaluation", "--limit", "1"))] == [
        "2024-12-02T12:15:00-05:00"
    ]
    assert [r["job"] for r in json.loads(shiol("--json", "--job", "pipeline"))] == ["pipeline"]
    assert [r["kind"] for r in json.loads(shiol("--json", "--kind", "draw"))] == ["draw"]
    assert json.loads(shiol("--json", "--job", "data_update")) == []


def test_an_empty_store_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0  # a missing store is refused (exit 5)
    assert shiol() == "no missed slots or drawings recorded\n"
    assert json.loads(shiol("--json")) == []
