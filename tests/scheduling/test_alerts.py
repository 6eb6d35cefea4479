"""Alerts through real local channels: an HTTP webhook receiver and a minimal SMTP server on 127.0.0.1
(tests/alert_support.py; the ``webhook`` and ``smtp`` fixtures come from tests/conftest.py)."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_support import WebhookReceiver
from store_support import T0, locked_by_another_process

from shiol_lib.scheduling.alerts import DEDUPLICATED, send_alert
from shiol_lib.settings import Settings
from shiol_lib.store import open_store
from shiol_lib.store.monitoring import recent_alerts

MESSAGE = "pipeline: the last 3 runs failed in a row (latest pipeline-2: failed)"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for tests: short timeouts, no backoff pause, no channel unless given."""
    return Settings(
        home=tmp_path,
        db_path=tmp_path / "db.duckdb",
        snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs",
        http_timeout_s=2.0,
        http_backoff_s=0.0,
    ).with_overrides(**overrides)


def _all_channels(tmp_path: Path, webhook_url: str, smtp_port: int) -> Settings:
    return make_settings(
        tmp_path,
        alert_webhook_url=webhook_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        alert_email_from="shiol@example.test",
        alert_email_to="ops@example.test, analyst@example.test",
    )


# --- tests ---------------------------------------------------------------------------------------


def test_an_alert_goes_to_the_log_the_webhook_and_email_and_is_recorded(tmp_path, store, webhook, smtp, caplog):
    settings = _all_channels(tmp_path, webhook.url, smtp.port)
    with caplog.at_level(logging.WARNING, logger="shiol_lib.scheduling.alerts"):
        channels = send_alert(settings, store, kind="failures", job="pipeline", message=MESSAGE, now=T0)

    assert channels == ["log", "webhook", "email"]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"ALERT failures [pipeline]: {MESSAGE}")
    ]
    assert webhook.bodies == [
        {"kind": "failures", "job": "pipeline", "message": MESSAGE, "at": "2024-07-01T16:00:00+00:00"}
    ]
    assert webhook.content_types == ["application/json"]
    [(sender, recipients, mail)] = smtp.received
    assert sender == "shiol@example.test" and recipients == ["ops@example.test", "analyst@example.test"]
    assert mail["Subject"] == f"[SHIOL+ alert] failures: {MESSAGE}"
    assert mail["To"] == "ops@example.test, analyst@example.test"
    body = mail.get_content()
    assert body.startswith(MESSAGE) and "job: pipeline" in body and "at: 2024-07-01T16:00:00+00:00" in body
    [alert] = recent_alerts(store)
    assert (alert.kind, alert.job, alert.message, alert.channels) == (
        "failures",
        "pipeline",
        MESSAGE,
        ("log", "webhook", "email"),
    )


def test_a_webhook_that_is_down_is_logged_and_email_still_delivers(tmp_path, store, smtp, caplog):
    settings = _all_channels(tmp_path, f"http://127.0.0.1:{_closed_port()}/hooks/s3cret-path", smtp.port)
    with caplog.at_level(logging.WARNING, logger="shiol_lib.scheduling.alerts"):
        channels = send_alert(settings, store, kind="failures", job="pipeline", message=MESSAGE)

    assert channels == ["log", "email"]
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "alert webhook http://127.0.0.1:" in error.getMessage() and "2 attempt(s)" in error.getMessage()
    assert "s3cret-path" not in error.getMessage()  # the path may carry a secret
    assert len(smtp.received) == 1
    assert recent_alerts(store)[0].channels == ("log", "email")


@pytest.mark.parametrize(
    ("statuses", "delivered", "requests_seen"),
    [((500,), True, 2), ((503, 502), False, 2), ((429,), True, 2), ((400,), False, 1)],
)
def test_the_webhook_is_retried_once_on_server_errors_only(tmp_path, store, statuses, delivered, requests_seen):
    receiver = WebhookReceiver(statuses)
    try:
        channels = send_alert(
            make_settings(tmp_path, alert_webhook_url=receiver.url),
            store,
            kind="failures",
            job="pipeline",
            message=MESSAGE,
        )
    finally:
        receiver.close()
    assert channels == (["log", "webhook"] if delivered else ["log"])
    assert len(receiver.bodies) == requests_seen


def test_an_smtp_server_that_never_answers_times_out_and_the_webhook_still_delivers(tmp_path, store, webhook, caplog):
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = _all_channels(tmp_path, webhook.url, silent.getsockname()[1]).with_overrides(http_timeout_s=0.3)
        with caplog.at_level(logging.ERROR, logger="shiol_lib.scheduling.alerts"):  # it never greets: only
            channels = send_alert(settings, store, kind="missed-draw", job="pipeline", message="drawing missed")

    assert channels == ["log", "webhook"]  # the 0.3 s timeout ends the wait (the message below says so)
    assert any("alert e-mail via 127.0.0.1" in r.getMessage() and "timed out" in r.getMessage() for r in caplog.records)
    assert len(webhook.bodies) == 1


def test_the_same_message_is_not_resent_within_the_window(tmp_path, store, webhook, smtp):
    settings = _all_channels(tmp_path, webhook.url, smtp.port)

    def send(message: str, minutes: float, **kwargs: Any) -> list[str]:
        return send_alert(
            settings,
            store,
            kind="failures",
            job="pipeline",
            message=message,
            now=T0 + timedelta(minutes=minutes),
            **kwargs,
        )

    assert send(MESSAGE, 0) == ["log", "webhook", "email"]
    assert send(MESSAGE, 30) == [DEDUPLICATED]
    assert send(MESSAGE, 59) == [DEDUPLICATED]
    assert send("evaluation: drawing 2024-07-01 missed", 59) == ["log", "webhook", "email"]  # another message
    assert send(MESSAGE, 61) == ["log", "webhook", "email"]  # the default window is one hour
    assert send(MESSAGE, 65, dedup_window_s=600) == [DEDUPLICATED]
    assert send(MESSAGE, 66, dedup_window_s=0) == ["log", "webhook", "email"]  # 0 turns it off
    assert len(webhook.bodies) == len(smtp.received) == 4
    assert len(recent_alerts(store)) == 4  # suppressed repeats are not recorded


def test_only_the_log_when_no_channel_is_configured(tmp_path, store):
    settings = make_settings(tmp_path, smtp_host="127.0.0.1")  # e-mail also needs from and to
    assert send_alert(settings, store, kind="failures", job=None, message=MESSAGE) == ["log"]
    assert recent_alerts(store)[0].channels == ("log",)


def test_a_locked_store_does_not_stop_delivery(tmp_path, webhook, caplog):
    store = open_store(tmp_path / "db.duckdb", lock_timeout_s=0.2)
    settings = make_settings(tmp_path, alert_webhook_url=webhook.url)
    with locked_by_another_process(store.path), caplog.at_level(logging.ERROR, logger="shiol_lib.scheduling.alerts"):
        channels = send_alert(settings, store, kind="failures", job="pipeline", message=MESSAGE)
    assert channels == ["log", "webhook"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("cannot check whether this alert was already sent") for m in messages)
    assert any(m.startswith("alert delivered through log,webhook but not recorded") and "locked" in m for m in messages)


def test_a_long_multi_line_message_keeps_its_first_line_as_the_subject(tmp_path, store, smtp):
    message = "evaluation: drawing 2024-07-01 missed: " + "x" * 120 + "\nsecond line, not ASCII: ✓ —"
    settings = make_settings(
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        alert_email_from="shiol@example.test",
        alert_email_to="ops@example.test",
    )
    assert send_alert(settings, store, kind="missed-draw", job="evaluation", message=message) == ["log", "email"]
    [(_, _, mail)] = smtp.received
    assert mail["Subject"] == "[SHIOL+ alert] missed-draw: " + message.splitlines()[0][:99] + "..."
    assert mail.get_content().startswith(message)
