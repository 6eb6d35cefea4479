"""Alerts: always the log, then a webhook and e-mail where configured; recorded, never repeated soon.

:func:`send_alert` walks the channels in order (log -> webhook -> e-mail), records the alert in the
store with the channels that delivered it, and sends nothing when the same message went out within
the de-duplication window (the scheduler re-raises a standing alert on every cycle). A channel that
fails is logged and skipped, and so is a store that cannot be read or written: raising an alert
never raises.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import duckdb

from shiol_lib.errors import ShiolError
from shiol_lib.settings import Settings
from shiol_lib.store.core import Store
from shiol_lib.store.monitoring import alert_sent_recently, record_alert

log = logging.getLogger(__name__)

DEFAULT_DEDUP_WINDOW_S = 3600.0
# The kind of the informational alert that carries the ledger witness after each run the scheduler closes
# (not a problem: a receiver counting problems filters it out by this kind).
WITNESS_ALERT = "witness"
DEDUPLICATED = "deduplicated"
_WEBHOOK_ATTEMPTS = 2  # the first try and one retry


def send_alert(
    settings: Settings,
    store: Store,
    *,
    kind: str,
    job: str | None,
    message: str,
    now: datetime | None = None,
    dedup_window_s: float = DEFAULT_DEDUP_WINDOW_S,
) -> list[str]:
    """Deliver an alert through every configured channel; return the channels that delivered it.

    Returns ``["deduplicated"]`` and sends nothing when the same message was recorded within
    ``dedup_window_s`` seconds.
    """
    now = now or datetime.now(UTC)
    if _sent_recently(store, message, dedup_window_s, now):
        log.debug("alert not repeated (sent within %g s): %s", dedup_window_s, message)
        return [DEDUPLICATED]
    log.warning("ALERT %s%s: %s", kind, f" [{job}]" if job else "", message)
    channels = ["log"]
    payload = {"kind": kind, "job": job, "message": message, "at": now.astimezone(UTC).isoformat()}
    if settings.alert_webhook_url and _post_webhook(settings, settings.alert_webhook_url, payload):
        channels.append("webhook")
    if (route := _email_route(settings)) is not None and _send_email(settings, route, payload):
        channels.append("email")
    try:
        record_alert(store, kind, job, message, channels, at=now)
    except (ShiolError, duckdb.Error) as err:
        log.error("alert delivered through %s but not recorded in the store: %s", ",".join(channels), err)
    return channels


def _sent_recently(store: Store, message: str, window_s: float, now: datetime) -> bool:
    if window_s <= 0:
        return False
    try:
        return alert_sent_recently(store, message, window_s, now=now)
    except (ShiolError, duckdb.Error) as err:
        log.error("cannot check whether this alert was already sent, sending it: %s", err)
        return False


def _post_webhook(settings: Settings, url: str, payload: dict[str, Any]) -> bool:
    """POST the payload as JSON; retry once on a connection error, a timeout, 429 or 5xx."""
    import requests  # here: `shiol schedule plan` (which imports this module) never posts

    problem, attempt = "", 0
    for attempt in range(1, _WEBHOOK_ATTEMPTS + 1):
        try:
            response = requests.post(url, json=payload, timeout=settings.http_timeout_s)
        except requests.RequestException as err:
            problem, retryable = f"{type(err).__name__}: {_scrub(str(err), url)}", True
        else:
            if response.ok:
                return True
            problem = f"HTTP {response.status_code}"
            retryable = response.status_code == 429 or response.status_code >= 500
        if not retryable or attempt == _WEBHOOK_ATTEMPTS:
            break
        time.sleep(settings.http_backoff_s)
    log.error("alert webhook %s failed after %d attempt(s): %s", _origin(url), attempt, problem)
    return False


class _EmailRoute(NamedTuple):
    host: str
    sender: str
    to: str  # comma-separated addresses


def _email_route(settings: Settings) -> _EmailRoute | None:
    """The SMTP host, sender and recipients of alert e-mail, or None unless all three are set."""
    if settings.smtp_host and settings.alert_email_from and settings.alert_email_to:
        return _EmailRoute(settings.smtp_host, settings.alert_email_from, settings.alert_email_to)
    return None


def _send_email(settings: Settings, route: _EmailRoute, payload: dict[str, Any]) -> bool:
    """Send a plain-text e-mail through ``route.host:smtp_port`` (no TLS, no login)."""
    import smtplib
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    recipients = [a.strip() for a in route.to.split(",") if a.strip()]
    try:
        msg = EmailMessage()
        msg["Subject"] = _subject(payload)
        msg["From"] = route.sender
        msg["To"] = ", ".join(recipients)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="shiol.local")
        msg.set_content(
            f"{payload['message']}\n\nkind: {payload['kind']}\njob: {payload['job'] or '-'}\nat: {payload['at']}\n"
        )
        with smtplib.SMTP(route.host, settings.smtp_port, timeout=settings.http_timeout_s) as smtp:
            smtp.send_message(msg, to_addrs=recipients)
    except (smtplib.SMTPException, OSError, ValueError) as err:  # ValueError: a malformed header
        log.error("alert e-mail via %s:%s failed: %s: %s", route.host, settings.smtp_port, type(err).__name__, err)
        return False
    return True


def _subject(payload: dict[str, Any]) -> str:
    first_line = str(payload["message"]).splitlines()[0] if payload["message"] else ""
    if len(first_line) > 100:
        first_line = first_line[:99] + "..."
    return f"[SHIOL+ alert] {payload['kind']}: {first_line}"


def _origin(url: str) -> str:
    """Scheme and host of a URL only: webhook paths often embed a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL's path and query (requests' errors quote them)."""
    parts = urlsplit(url)
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    for part in (url, secret):
        if part not in ("", "/"):
            text = text.replace(part, "/<redacted>")
    return text
