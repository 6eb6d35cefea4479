"""Alerts that mean one incident: a failure streak or a missed drawing gives exactly one open and one
recovery message on each channel, a real webhook receiver and a real SMTP server on 127.0.0.1
(tests/alert_support.py), whatever the de-duplication window, however often the scheduler re-plans."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_support import SmtpReceiver, WebhookReceiver

from shiol_lib.scheduling.plans import Incident, Plan, iso
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import Settings
from shiol_lib.store.incidents import IncidentRow, list_incidents
from shiol_lib.store.runs import RunRow, insert_run

pytestmark = pytest.mark.faults("alerts")

NEVER = "0 3 1 1 *"  # 03:00 on January 1st: no slot of any job comes near the test
CHANNELS = ("webhook", "email")


def make_scheduler(tmp_path: Path, webhook: WebhookReceiver, smtp: SmtpReceiver, dedup_s: float) -> Scheduler:
    settings = Settings(
        home=tmp_path,
        db_path=tmp_path / "db.duckdb",
        snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs",
        http_timeout_s=2.0,
        http_backoff_s=0.0,
        alert_webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        alert_email_from="shiol@example.test",
        alert_email_to="ops@example.test",
        alert_after_failures=2,
        alert_dedup_s=dedup_s,
        pipeline_cron=NEVER,
        update_cron=NEVER,
        evaluation_cron=NEVER,
    )
    return Scheduler(settings)


def add_run(
    scheduler: Scheduler,
    run_id: str,
    status: str,
    minutes_ago: float,
    *,
    job: str = "evaluation",
    draw_date: date | None = None,
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    insert_run(
        scheduler.store(),
        RunRow(
            run_id=run_id,
            job=job,
            slot=None,
            trigger="manual",
            status=status,
            started_at=started,
            finished_at=started + timedelta(seconds=30),
            error=None if status == "success" else "boom",
            error_class=None if status == "success" else "cell",
            target_draw_date=draw_date,
            attempt=1,
            parent_run_id=None,
            seed=None,
            pid=None,
            host=None,
            heartbeat_at=started,
            archive_dir=None,
        ),
    )


def received(webhook: WebhookReceiver, smtp: SmtpReceiver) -> dict[str, list[dict[str, Any]]]:
    """Each channel's messages as ``{kind, message, at}``; an e-mail's from the lines its body ends with."""
    mails = []
    for _, _, mail in smtp.received:
        body = mail.get_content()
        fields = dict(re.findall(r"^(kind|job|at): (.*)$", body, flags=re.MULTILINE))
        mails.append({"kind": fields["kind"], "message": body.split("\n\nkind: ")[0], "at": fields["at"]})
    return {"webhook": list(webhook.bodies), "email": mails}


def assert_one_open_and_one_recovery_each(incidents: list[IncidentRow], seen: dict[str, list[dict[str, Any]]]) -> None:
    """Per channel: every message belongs to one incident, and each incident has one open and one recovery."""
    for channel in CHANNELS:
        messages = seen[channel]
        for row in incidents:
            opens = [m for m in messages if m["kind"] == row.kind and datetime.fromisoformat(m["at"]) == row.opened_at]
            recoveries = [
                m for m in messages if m["kind"] == "recovered" and f"alerted at {iso(row.opened_at)}" in m["message"]
            ]
            assert (len(opens), len(recoveries)) == (1, 1), (channel, row.key, messages)
        assert len(messages) == 2 * len(incidents), (channel, messages)


@pytest.mark.parametrize("dedup_s", [0.0, 3600.0], ids=["no-dedup", "hour-dedup"])
def test_failure_streaks_give_one_open_and_one_recovery_per_incident_on_each_channel(
    tmp_path, webhook, smtp, dedup_s, fault_cases
):
    fault_cases(2 * len(CHANNELS))  # two streaks, each on both channels
    scheduler = make_scheduler(tmp_path, webhook, smtp, dedup_s)
    add_run(scheduler, "ev-1", "success", 60)
    add_run(scheduler, "ev-2", "failed", 50)
    scheduler.replan()
    assert webhook.bodies == [] and smtp.received == []  # one failure is not a streak of 2
    add_run(scheduler, "ev-3", "failed", 40)
    for _ in range(3):
        scheduler.replan()  # every re-plan sees the streak: still one incident
    add_run(scheduler, "ev-4", "failed", 30)  # the streak grows: the same incident
    scheduler.replan()
    scheduler.replan()
    assert [b["kind"] for b in webhook.bodies] == ["failures"]
    add_run(scheduler, "ev-5", "success", 20)
    scheduler.replan()
    scheduler.replan()
    assert [b["kind"] for b in webhook.bodies] == ["failures", "recovered"]
    assert "ev-5 succeeded" in webhook.bodies[1]["message"]
    add_run(scheduler, "ev-6", "failed", 10)
    add_run(scheduler, "ev-7", "failed", 5)
    scheduler.replan()  # a new streak is a new incident
    scheduler.replan()
    add_run(scheduler, "ev-8", "success", 1)
    scheduler.replan()
    scheduler.replan()

    incidents = list_incidents(scheduler.store())
    assert {i.key for i in incidents} == {"evaluation:failures:ev-2", "evaluation:failures:ev-6"}
    assert all(i.cleared_at is not None for i in incidents)
    seen = received(webhook, smtp)
    assert [m["kind"] for m in seen["email"]] == ["failures", "recovered", "failures", "recovered"]
    assert_one_open_and_one_recovery_each(incidents, seen)


def test_a_missed_drawing_opens_once_and_clears_once_on_each_channel(tmp_path, webhook, smtp, fault_cases):
    fault_cases(len(CHANNELS))
    scheduler = make_scheduler(tmp_path, webhook, smtp, 0.0)
    missed = Incident(
        "pipeline:missed-draw:2024-07-01",
        "missed-draw",
        "pipeline",
        "pipeline: drawing 2024-07-01 missed: no successful run before the next drawing",
    )
    now = datetime.now(UTC)
    showing = Plan(at=now, due=[], missed=[], next={}, alerts=[missed.message], incidents=[missed])
    quiet = Plan(at=now, due=[], missed=[], next={}, alerts=[])
    for plan in (showing, showing, quiet, quiet):  # the planner shows it once; repeats change nothing
        scheduler._record_plan(scheduler.store(), plan)
    assert [b["kind"] for b in webhook.bodies] == ["missed-draw"]
    add_run(scheduler, "pl-1", "success", 0, job="pipeline", draw_date=date(2024, 7, 3))
    for plan in (quiet, quiet, showing):  # cleared once; a late repeat of the same key is not a new incident
        scheduler._record_plan(scheduler.store(), plan)

    seen = received(webhook, smtp)
    assert [m["kind"] for m in seen["webhook"]] == [m["kind"] for m in seen["email"]] == ["missed-draw", "recovered"]
    assert "pl-1 succeeded" in seen["email"][1]["message"]
    assert_one_open_and_one_recovery_each(list_incidents(scheduler.store()), seen)
