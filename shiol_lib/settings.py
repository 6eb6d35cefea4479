"""All configuration, read once from ``SHIOL_*`` environment variables into a frozen object.

Only entry points (the CLI, the scheduler) call :func:`load_settings`; everything else receives the
object. Every variable, its default and its meaning is listed in ``.env.example``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from shiol_lib.errors import ConfigError

DEFAULT_MUSL_BASE_URL = "https://api.musl.com"
DEFAULT_NY_BASE_URL = "https://data.ny.gov"


@dataclass(frozen=True)
class Settings:
    """Typed, immutable workbench settings."""

    home: Path
    db_path: Path
    snapshot_path: Path
    runs_dir: Path
    musl_base_url: str = DEFAULT_MUSL_BASE_URL
    musl_api_key: str | None = field(default=None, repr=False)
    ny_base_url: str = DEFAULT_NY_BASE_URL
    http_timeout_s: float = 10.0
    http_retries: int = 2
    http_backoff_s: float = 0.5
    http_max_retry_after_s: float = 30.0
    http_max_bytes: int = 5_000_000
    musl_max_dates: int = 12
    lock_timeout_s: float = 30.0
    notebooks_dir: Path = Path(__file__).resolve().parent.parent / "notebooks"
    run_timeout_s: float = 1800.0
    pipeline_cron: str = "29 23 * * 1,3,6"
    update_cron: str = "0 6 * * 0,2,4,5"
    evaluation_cron: str = "15 6,12,18 * * *"
    grace_s: float = 600.0
    draw_delay_s: float = 1800.0
    retry_backoff_s: tuple[float, ...] = (60.0, 120.0, 240.0)
    waiting_deadline_s: float = 20 * 3600.0
    heartbeat_s: float = 15.0
    heartbeat_stale_s: float = 120.0
    alert_after_failures: int = 3
    alert_dedup_s: float = 3600.0
    alert_webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    alert_email_from: str | None = None
    alert_email_to: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8765
    api_token: str | None = field(default=None, repr=False)
    scheduler_cycle_s: float = 1.0

    def with_overrides(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (tests and CLI flags)."""
        return replace(self, **changes)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read ``SHIOL_*`` variables from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    home = Path(env.get("SHIOL_HOME") or Path.cwd()).expanduser().resolve()
    db_path = _path(env, "SHIOL_DB_PATH", home / "var" / "shiol.duckdb")
    return Settings(
        home=home,
        db_path=db_path,
        snapshot_path=snapshot_path_for(db_path),
        runs_dir=_path(env, "SHIOL_RUNS_DIR", home / "runs"),
        musl_base_url=_url(env, "SHIOL_MUSL_BASE_URL", DEFAULT_MUSL_BASE_URL),
        musl_api_key=env.get("SHIOL_MUSL_API_KEY") or None,
        ny_base_url=_url(env, "SHIOL_NY_BASE_URL", DEFAULT_NY_BASE_URL),
        http_timeout_s=_number(env, "SHIOL_HTTP_TIMEOUT_S", 10.0, minimum=0.1),
        http_retries=int(_number(env, "SHIOL_HTTP_RETRIES", 2, minimum=0, integer=True)),
        http_backoff_s=_number(env, "SHIOL_HTTP_BACKOFF_S", 0.5, minimum=0.0),
        http_max_retry_after_s=_number(env, "SHIOL_HTTP_MAX_RETRY_AFTER_S", 30.0, minimum=0.0),
        http_max_bytes=int(_number(env, "SHIOL_HTTP_MAX_BYTES", 5_000_000, minimum=1, integer=True)),
        musl_max_dates=int(_number(env, "SHIOL_MUSL_MAX_DATES", 12, minimum=0, integer=True)),
        lock_timeout_s=_number(env, "SHIOL_LOCK_TIMEOUT_S", 30.0, minimum=0.0),
        notebooks_dir=_path(env, "SHIOL_NOTEBOOKS_DIR", Path(__file__).resolve().parent.parent / "notebooks"),
        run_timeout_s=_number(env, "SHIOL_RUN_TIMEOUT_S", 1800.0, minimum=1.0),
        pipeline_cron=env.get("SHIOL_PIPELINE_CRON") or "29 23 * * 1,3,6",
        update_cron=env.get("SHIOL_UPDATE_CRON") or "0 6 * * 0,2,4,5",
        evaluation_cron=env.get("SHIOL_EVALUATION_CRON") or "15 6,12,18 * * *",
        grace_s=_number(env, "SHIOL_GRACE_S", 600.0, minimum=0.0),
        draw_delay_s=_number(env, "SHIOL_DRAW_DELAY_S", 1800.0, minimum=0.0),
        retry_backoff_s=_seconds_list(env, "SHIOL_RETRY_BACKOFF_S", (60.0, 120.0, 240.0)),
        waiting_deadline_s=_number(env, "SHIOL_WAITING_DEADLINE_S", 20 * 3600.0, minimum=60.0),
        heartbeat_s=_number(env, "SHIOL_HEARTBEAT_S", 15.0, minimum=0.1),
        heartbeat_stale_s=_number(env, "SHIOL_HEARTBEAT_STALE_S", 120.0, minimum=1.0),
        alert_after_failures=int(_number(env, "SHIOL_ALERT_AFTER_FAILURES", 3, minimum=1, integer=True)),
        alert_dedup_s=_number(env, "SHIOL_ALERT_DEDUP_S", 3600.0, minimum=0.0),
        alert_webhook_url=_optional_url(env, "SHIOL_ALERT_WEBHOOK_URL"),
        smtp_host=env.get("SHIOL_SMTP_HOST") or None,
        smtp_port=int(_number(env, "SHIOL_SMTP_PORT", 25, minimum=1, integer=True)),
        alert_email_from=env.get("SHIOL_ALERT_EMAIL_FROM") or None,
        alert_email_to=env.get("SHIOL_ALERT_EMAIL_TO") or None,
        api_host=env.get("SHIOL_API_HOST") or "127.0.0.1",
        api_port=int(_number(env, "SHIOL_API_PORT", 8765, minimum=0, integer=True)),
        api_token=env.get("SHIOL_API_TOKEN") or None,
        scheduler_cycle_s=_number(env, "SHIOL_SCHEDULER_CYCLE_S", 1.0, minimum=0.05),
    )


def snapshot_path_for(db_path: Path) -> Path:
    """The reader snapshot that lives beside a store file: ``<name>.snapshot.duckdb``."""
    return Path(db_path).with_suffix(".snapshot.duckdb")


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw).expanduser().resolve() if raw else default


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or default).strip()
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL; set it like 'https://host[:port]'")
    return raw.rstrip("/")


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    return _url(env, name, "") if env.get(name) else None


def _seconds_list(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if not raw:
        return default
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a comma-separated list of seconds, e.g. 60,120,240") from err
    if not values or min(values) < 0:
        raise ConfigError(f"{name}={raw!r} needs at least one delay, none negative")
    return values


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False
) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as err:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}; unset it or give e.g. {default}") from err
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} is below the minimum {minimum}")
    return value
