"""The scheduler sends the signed ledger head (the witness) to the alert channel once per run it closes.

A real job process runs a due job; a real webhook receiver on 127.0.0.1 gets exactly one message, of
kind ``witness``, that names the new head, carries its HMAC and never the key, and that
``shiol runs verify --witness`` accepts as kept elsewhere. A plan with nothing due sends nothing more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alert_support import WebhookReceiver

from shiol_lib.archive import ledger, witness
from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.runs import RunStatus
from shiol_lib.jobs.catalog import EVALUATION
from shiol_lib.scheduling.alerts import WITNESS_ALERT
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import load_settings

SHIOL = str(Path(sys.executable).parent / "shiol")
NEVER = "0 3 1 1 *"
KEY = "witness-test-key-0123456789abcdef"


@pytest.mark.slow
def test_one_signed_witness_per_run_closed_reaches_the_webhook(tmp_path: Path, webhook: WebhookReceiver) -> None:
    just_now = datetime.now(NEW_YORK) - timedelta(minutes=1)
    env = {
        **os.environ,
        "SHIOL_HOME": str(tmp_path),
        "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
        "SHIOL_HTTP_RETRIES": "0",
        "SHIOL_LEDGER_KEY": KEY,
        "SHIOL_ALERT_WEBHOOK_URL": webhook.url,
        "SHIOL_EVALUATION_CRON": f"{just_now:%M %H} * * *",
        "SHIOL_PIPELINE_CRON": NEVER,
        "SHIOL_UPDATE_CRON": NEVER,
        "SHIOL_GRACE_S": "3600",
    }
    env.pop("SHIOL_MUSL_API_KEY", None)
    seeded = subprocess.run([SHIOL, "update-data", "--offline"], env=env, capture_output=True, text=True, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    scheduler = Scheduler(load_settings(env))
    started = time.monotonic()
    while not scheduler.plan().due:  # the slot a minute ago is owed (the store may still be settling)
        time.sleep(0.2)
        assert time.monotonic() - started < 300  # a hang guard only
    assert scheduler.execute_due(EVALUATION.name) == RunStatus.SUCCESS
    assert scheduler.execute_due(EVALUATION.name) is None  # nothing due: no run, no witness

    assert len(webhook.bodies) == 1, webhook.bodies
    body = webhook.bodies[0]
    assert body["kind"] == WITNESS_ALERT and body["job"] == EVALUATION.name
    assert body["message"].startswith("ledger witness {") and KEY not in json.dumps(body)
    seen = witness.parse(body["message"])
    head = ledger.head(tmp_path / "runs")
    assert head is not None and (seen.seq, seen.hash) == (head.seq, head.hash) and seen.signature_ok(KEY)

    kept = tmp_path / "witness-kept-elsewhere.txt"  # in the home, outside runs/
    kept.write_text(body["message"] + "\n")
    verified = subprocess.run(
        [SHIOL, "runs", "verify", "--witness", str(kept)], env=env, capture_output=True, text=True, timeout=300
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
