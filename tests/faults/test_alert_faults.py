"""Alerts that mean one incident: a failure streak or a missed drawing alerts once when it opens and
once when it clears, through a real webhook receiver on 127.0.0.1, whatever the dedup window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from test_alerts import WebhookReceiver

from shiol_lib.scheduling.plans import Incident, Plan
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import Settings
from shiol_lib.store.incidents import list_incidents
from shiol_lib.store.runs import RunRow, insert_run

NEVER = "0 3 1 1 *"  # 03:00 on January 1st: no slot of any job comes near the test


def make_scheduler(tmp_path: Path, webhook_url: str, dedup_s: float) -> Scheduler:
    settings = Settings(
        home=tmp_path, db_path=tmp_path / "db.duckdb", snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs", http_timeout_s=2.0, http_backoff_s=0.0, alert_webhook_url=webhook_url,
        alert_after_failures=2, alert_dedup_s=dedup_s, pipeline_cron=NEVER, update_cron=NEVER,
        evaluation_cron=NEVER,
    )
    return Scheduler(settings)


def add_manual_run(scheduler: Scheduler, run_id: str, status: str, minutes_ago: float) -> None:
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    insert_run(scheduler.store(), RunRow(
        run_id=run_id, job="evaluation", slot=None, trigger="manual", status=status, started_at=started,
        finished_at=started + timedelta(seconds=30), error=None if status == "success" else "boom",
        error_class=None if status == "success" else "cell", target_draw_date=None, attempt=1,
        parent_run_id=None, seed=None, pid=None, host=None, heartbeat_at=started, archive_dir=None,
    ))


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.mark.parametrize("dedup_s", [0.0, 3600.0], ids=["no-dedup", "hour-dedup"])
def test_a_failure_streak_gives_exactly_one_open_and_one_recovery_post(tmp_path, webhook, dedup_s):
    scheduler = make_scheduler(tmp_path, webhook.url, dedup_s)
    add_manual_run(scheduler, "ev-1", "success", 60)
    add_manual_run(scheduler, "ev-2", "failed", 50)
    scheduler.replan()
    assert webhook.bodies == []  # one failure is not a streak of 2
    add_manual_run(scheduler, "ev-3", "failed", 40)
    for _ in range(3):
        scheduler.replan()  # every re-plan sees the streak: still one incident
    add_manual_run(scheduler, "ev-4", "failed", 30)  # the streak grows: the same incident
    scheduler.replan()
    scheduler.replan()
    assert [b["kind"] for b in webhook.bodies] == ["failures"]
    add_manual_run(scheduler, "ev-5", "success", 20)
    scheduler.replan()
    scheduler.replan()
    assert [b["kind"] for b in webhook.bodies] == ["failures", "recovered"]
    assert "ev-5 succeeded" in webhook.bodies[1]["message"]
    [incident] = list_incidents(scheduler.store())
    assert incident.key == "evaluation:failures:ev-2" and incident.cleared_at is not None
    add_manual_run(scheduler, "ev-6", "failed", 10)
    add_manual_run(scheduler, "ev-7", "failed", 5)
    scheduler.replan()  # a new streak is a new incident
    assert [b["kind"] for b in webhook.bodies] == ["failures", "recovered", "failures"]
    assert {i.key for i in list_incidents(scheduler.store())} == {"evaluation:failures:ev-2",
                                                                   "evaluation:failures:ev-6"}


def test_a_missed_drawing_opens_once_and_clears_when_the_job_next_succeeds(tmp_path, webhook):
    scheduler = make_scheduler(tmp_path, webhook.url, 0.0)
    missed = Incident("pipeline:missed-draw:2024-07-01", "missed-draw", "pipeline",
                      "pipeline: drawing 2024-07-01 missed: no successful run before the next drawing")
    now = datetime.now(UTC)
    showing = Plan(at=now, due=[], missed=[], next={}, alerts=[missed.message], incidents=[missed])
    quiet = Plan(at=now, due=[], missed=[], next={}, alerts=[])
    for plan in (showing, showing, quiet, quiet):  # the planner shows it once; repeats change nothing
        scheduler._record_plan(scheduler.store(), plan)
    assert [b["kind"] for b in webhook.bodies] == ["missed-draw"]
    insert_run(scheduler.store(), RunRow(
        run_id="pl-1", job="pipeline", slot=None, trigger="manual", status="success",
        started_at=datetime.now(UTC), finished_at=datetime.now(UTC), error=None, error_class=None,
        target_draw_date=date(2024, 7, 3), attempt=1, parent_run_id=None, seed=None, pid=None, host=None,
        heartbeat_at=None, archive_dir=None,
    ))
    for plan in (quiet, quiet, showing):  # cleared once; a late repeat of the same key is not a new incident
        scheduler._record_plan(scheduler.store(), plan)
    assert [b["kind"] for b in webhook.bodies] == ["missed-draw", "recovered"]
    assert "pl-1 succeeded" in webhook.bodies[1]["message"]
