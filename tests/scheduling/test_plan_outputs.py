"""What plan, status, health and dead letters say: the drawings the store lacks, and one time convention.

A real store under SHIOL_HOME in tmp_path; the planner on a fixed instant (Tuesday 2026-12-01 10:05 EST).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from health_support import auth, serving

from shiol_lib.cli.main import cli, status_dict
from shiol_lib.domain.draw_calendar import NEW_YORK, expected_draws, previous_draw
from shiol_lib.domain.draws import Draw
from shiol_lib.domain.game import matrix_for
from shiol_lib.ingest.update import update_draws
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import jobs as job_table

AT = datetime(2026, 12, 1, 10, 5, tzinfo=NEW_YORK)
TOKEN = "t0ken-for-tests"


def draws_between(first: date, last: date, *, leave_out: tuple[date, ...] = ()) -> list[Draw]:
    rng = random.Random(3)
    out = []
    for day in expected_draws(first, last):
        matrix = matrix_for(day)
        if day not in leave_out:
            out.append(
                Draw(
                    day, tuple(sorted(rng.sample(range(1, matrix.white_max + 1), 5))), rng.randint(1, matrix.pb_max), 2
                )
            )
    return out


def settings_for(home: Path) -> Settings:
    return load_settings({"SHIOL_HOME": str(home), "SHIOL_API_TOKEN": TOKEN, "SHIOL_API_PORT": "8765"})


def scheduler_with(home: Path, draws: list[Draw]) -> Scheduler:
    scheduler = Scheduler(settings_for(home))
    scheduler.store().apply_draws(draws, source="test", fetched_at=datetime(2024, 7, 1, tzinfo=UTC))
    return scheduler


GAP = date(2024, 6, 15)


@pytest.fixture
def behind(tmp_path: Path) -> Scheduler:
    """A store that stopped at 2024-06-29 (the bundled snapshot's last drawing), one gap inside its range."""
    return scheduler_with(tmp_path, draws_between(date(2024, 6, 1), date(2024, 6, 29), leave_out=(GAP,)))


def expected_lacking() -> int:
    return 1 + len(expected_draws(date(2024, 6, 30), previous_draw(AT)))


def test_plan_json_says_how_many_expected_drawings_the_store_lacks(behind):
    data = behind.plan(AT).as_dict()
    assert data["draws"] == {
        "lacking": expected_lacking(),
        "missing_in_range": 1,
        "not_yet_fetched": expected_lacking() - 1,
        "last_stored": "2024-06-29",
        "latest_held": "2026-11-30",
    }
    assert expected_lacking() > 350  # hundreds of drawings behind the calendar


def test_plan_and_status_agree_on_the_count_and_a_current_store_lacks_none(behind, tmp_path):
    status = status_dict(behind.settings, behind.store(), AT)
    assert status["draws"]["lacking"] == behind.plan(AT).draws.lacking == expected_lacking()
    assert status["draws"]["missing"] == [GAP.isoformat()]
    current = scheduler_with(tmp_path / "current", draws_between(date(2026, 11, 1), previous_draw(AT)))
    assert current.plan(AT).as_dict()["draws"]["lacking"] == 0
    assert status_dict(current.settings, current.store(), AT)["draws"]["lacking"] == 0


def test_the_count_includes_the_drawings_the_update_reports_still_missing(tmp_path):
    scheduler = Scheduler(settings_for(tmp_path))
    report = update_draws(scheduler.store(), musl=None, ny=None, now=AT, offline=True)  # the bundled seed
    assert len(report.still_missing) == 6
    coverage = scheduler.plan(AT).draws
    assert list(coverage.missing) == report.still_missing
    assert coverage.lacking == 6 + len(coverage.unfetched) and coverage.last == date(2024, 6, 29)


def test_plan_and_status_text_show_the_count_and_times_in_et_and_utc(behind, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    runner = CliRunner()
    plan = runner.invoke(cli, ["schedule", "plan", "--at", AT.isoformat()], prog_name="shiol")
    assert plan.exit_code == 0, plan.output
    assert "plan at 2026-12-01T10:05:00-05:00 ET (2026-12-01T15:05:00+00:00 UTC)" in plan.output
    assert f"the store lacks {expected_lacking()} expected drawing(s) up to 2026-11-30" in plan.output
    assert "next pipeline     2026-12-02T23:29:00-05:00 ET (2026-12-03T04:29:00+00:00 UTC)" in plan.output
    status = runner.invoke(cli, ["status"], prog_name="shiol")
    assert status.exit_code == 0, status.output
    assert "expected drawings the store lacks up to" in status.output
    data = json.loads(runner.invoke(cli, ["status", "--json"], prog_name="shiol").output)
    assert datetime.fromisoformat(data["now"]) == datetime.fromisoformat(data["now_utc"])
    assert data["now_utc"].endswith("+00:00") and data["now"].endswith(("-05:00", "-04:00"))


def test_plan_json_gives_each_instant_a_utc_twin(behind):
    data = behind.plan(AT).as_dict()
    assert (data["at"], data["at_utc"]) == ("2026-12-01T10:05:00-05:00", "2026-12-01T15:05:00+00:00")
    assert data["due"][0]["slot"] == "2026-11-30T23:29:00-05:00"
    assert data["due"][0]["slot_utc"] == "2026-12-01T04:29:00+00:00"
    for job, slot in data["next"].items():
        assert datetime.fromisoformat(data["next_utc"][job]) == datetime.fromisoformat(slot)
    assert datetime.fromisoformat(data["wake_at_utc"]) == datetime.fromisoformat(data["wake_at"])


def test_health_json_has_next_run_utc_and_the_lacking_count(behind):
    job_table.record_scheduler_start(behind.store(), at=AT - timedelta(days=1), pid=1, host="bench")
    with serving(behind.settings.with_overrides(api_port=0), behind.store, lambda: behind.plan(AT).as_dict()) as url:
        report = requests.get(f"{url}/api/v1/scheduler/health", headers=auth(), timeout=5).json()
    assert report["draws"]["lacking"] == expected_lacking()
    for job, entry in report["jobs"].items():
        assert entry["next_run"].endswith("-05:00") and entry["next_run_utc"].endswith("+00:00"), job
        assert datetime.fromisoformat(entry["next_run_utc"]) == datetime.fromisoformat(entry["next_run"])
    assert report["jobs"]["pipeline"]["next_run_utc"] == "2026-12-03T04:29:00+00:00"
    assert datetime.fromisoformat(report["at_utc"]) == AT
    assert datetime.fromisoformat(report["started_at_utc"]) == datetime.fromisoformat(report["started_at"])


def test_deadletters_show_the_slot_and_the_rerun_command_in_et_and_utc(behind, tmp_path, monkeypatch):
    slot = datetime(2024, 7, 1, 23, 29, tzinfo=NEW_YORK)
    command = "shiol run pipeline --trigger manual --slot 2024-07-01T23:29:00-04:00 --draw-date 2024-07-01"
    job_table.add_dead_letter(
        behind.store(),
        job_table.DeadLetter(
            dead_letter_id="dl1",
            job="pipeline",
            slot=slot.astimezone(UTC),
            draw_date=date(2024, 7, 1),
            attempts=4,
            last_run_id="r4",
            error_class="fetch",
            error="source down",
            notebook="10_update_data.ipynb",
            failed_cell=2,
            rerun_command=command,
            created_at=datetime(2024, 7, 2, 4, 0, tzinfo=UTC),
            resolved_at=None,
            resolved_by_run_id=None,
        ),
    )
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    runner = CliRunner()
    text = runner.invoke(cli, ["deadletters"], prog_name="shiol")
    assert text.exit_code == 0, text.output
    both = "2024-07-01T23:29:00-04:00 ET (2024-07-02T03:29:00+00:00 UTC)"
    lines = text.output.splitlines()
    assert any(line.strip().startswith(f"slot {both}") for line in lines), text.output
    assert any(line.strip() == f"re-run: {command}  # --slot is {both}" for line in lines), text.output
    letter = json.loads(runner.invoke(cli, ["deadletters", "--json"], prog_name="shiol").output)[0]
    assert (letter["slot"], letter["slot_utc"]) == ("2024-07-01T23:29:00-04:00", "2024-07-02T03:29:00+00:00")
    assert letter["created_at_utc"] == "2024-07-02T04:00:00+00:00" and letter["resolved_at_utc"] is None
