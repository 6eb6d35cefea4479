"""All configuration, read once from ``SHIOL_*`` environment variables into a frozen object.

Only entry points (the CLI, the scheduler, the job process) call :func:`load_settings`; everything else
receives the object. The defaults are the :class:`Settings` field defaults and nowhere else; every
variable, its default and its meaning is listed in ``.env.example``. :func:`settings_to_env` is the
exact inverse of :func:`load_settings`: it is how a job process and its kernels receive the settings
they were given.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shiol_lib.errors import ConfigError

DEFAULT_MUSL_BASE_URL = "https://api.musl.com"
DEFAULT_NY_BASE_URL = "https://data.ny.gov"
# The pipeline notebooks: a checkout's ``notebooks/`` (what JupyterLab users edit) when this package runs
# from one, else the copy the wheel ships as package data (``shiol_lib/notebooks/``, mapped from
# ``notebooks/`` at build time by pyproject.toml). Two stat calls, no environment read.
CHECKOUT_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PACKAGED_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
_IN_CHECKOUT = (CHECKOUT_NOTEBOOKS / "10_update_data.ipynb").is_file()
PACKAGE_NOTEBOOKS = CHECKOUT_NOTEBOOKS if _IN_CHECKOUT else PACKAGED_NOTEBOOKS
APP_NAME = "shiol"
LOG_FORMATS = ("text", "json")


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
    notebooks_dir: Path = PACKAGE_NOTEBOOKS
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
    lab_port: int = 8888
    lab_token: str | None = field(default=None, repr=False)
    scheduler_cycle_s: float = 1.0
    plan_max_age_s: float = 120.0  # /healthz answers 503 when the last plan is older
    ledger_key: str | None = field(default=None, repr=False)  # signs the run ledger (keep it outside runs/)
    dask_address: str | None = None  # default Dask scheduler of research sweeps ("local", "tcp://host:8786")
    log_file: Path | None = None
    log_max_bytes: int = 10_000_000
    log_backups: int = 5
    log_format: str = "text"
    step_memory_mb: int = 4096  # 0: no ceiling
    kernel_template: str = "on"  # "off": every step kernel starts fresh (execution/template.py)
    jobs_file: Path | None = None  # the analyst's job definitions (None: jobs.toml under home)

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (tests and CLI flags)."""
        return replace(self, **changes)

    @property
    def jobs_path(self) -> Path:
        """The jobs file: ``SHIOL_JOBS_FILE``, else ``jobs.toml`` under ``SHIOL_HOME``."""
        return self.jobs_file or self.home / "jobs.toml"

    def __post_init__(self) -> None:
        if self.heartbeat_stale_s < 2 * self.heartbeat_s:
            raise ConfigError(
                f"SHIOL_HEARTBEAT_STALE_S={self.heartbeat_stale_s:g} must be at least twice "
                f"SHIOL_HEARTBEAT_S={self.heartbeat_s:g}, or a live run could be taken for a dead one"
            )


def default(name: str) -> Any:
    """The default of the setting ``name`` (a :class:`Settings` field): the one place defaults live."""
    spec = _FIELDS[name]
    if spec.default is MISSING:
        raise KeyError(f"setting {name!r} has no default")
    return spec.default


# -- parsers: (variable name, raw text) -> value, raising ConfigError that names both --------------

Parse = Callable[[str, str], Any]


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _optional_text(name: str, raw: str) -> str | None:
    return raw.strip() or None


# Numbers are ASCII only: ``int()`` and ``float()`` also take other scripts' digits ("８０" is 80),
# underscores, "inf" and "nan", none of which a person setting a port or a timeout means.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(inf|infinity|nan)", re.IGNORECASE)


def _secret(name: str, raw: str) -> str:
    """A key or token: set means non-blank (blanks would silently turn signing or access off)."""
    value = raw.strip()
    if not value:
        raise ConfigError(f"{name} is set but blank; set a real value, or leave it empty (unset) on purpose")
    return value


def _url(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL; set it like 'https://host[:port]'")
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port  # .port raises on a port that is not a number 0-65535
    except ValueError as err:
        raise ConfigError(f"{name}={raw!r} is not a valid URL ({err}); set it like 'https://host[:port]'") from err
    if not host or not parts.netloc.isascii():
        raise ConfigError(f"{name}={raw!r} names no host (ASCII); set it like 'https://host[:port]'")
    return value.rstrip("/")


def _optional_url(name: str, raw: str) -> str | None:
    return _url(name, raw) if raw.strip() else None


def _number(minimum: float, maximum: float = math.inf, *, integer: bool = False) -> Parse:
    """A parser for a finite number in ``[minimum, maximum]`` (a whole one when ``integer``)."""
    allowed = f"{minimum:g} to {maximum:g}" if math.isfinite(maximum) else f"at least {minimum:g}"

    def parse(name: str, raw: str) -> float | int:
        text = raw.strip()
        if _NOT_FINITE.fullmatch(text):
            raise ConfigError(f"{name}={raw!r} is not a finite number; allowed: {allowed}")
        if not (_INTEGER if integer else _DECIMAL).fullmatch(text):
            kind = "a whole number" if integer else "a number"
            raise ConfigError(f"{name}={raw!r} is not {kind} in ASCII digits (0-9); allowed: {allowed}")
        value: float | int = int(text) if integer else float(text)
        if not math.isfinite(value):
            raise ConfigError(f"{name}={raw!r} is not a finite number; allowed: {allowed}")
        if value < minimum:
            raise ConfigError(f"{name}={raw!r} is below the minimum {minimum:g}; allowed: {allowed}")
        if value > maximum:
            raise ConfigError(f"{name}={raw!r} is above the maximum {maximum:g}; allowed: {allowed}")
        return value

    return parse


def _seconds_list(name: str, raw: str) -> tuple[float, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(_DECIMAL.fullmatch(part) or _NOT_FINITE.fullmatch(part) for part in parts):
        raise ConfigError(f"{name}={raw!r} is not a comma-separated list of seconds in ASCII digits, e.g. 60,120,240")
    values = tuple(float(part) for part in parts)
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"{name}={raw!r} needs at least one delay, each a finite number of seconds above 0")
    return values


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _optional_path(name: str, raw: str) -> Path | None:
    return _path(name, raw) if raw.strip() else None


def _log_file(name: str, raw: str) -> Path:
    """A file to log to: its folder must exist and be writable, and the path must not be a folder."""
    path = _path(name, raw)
    if path.is_dir():
        raise ConfigError(f"{name}={raw!r} is a folder; set it to a file inside it, e.g. {path / 'shiol.log'}")
    if not path.parent.is_dir():
        raise ConfigError(
            f"{name}={raw!r}: the folder {path.parent} does not exist; create it first "
            "(or point the variable into an existing folder)"
        )
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise ConfigError(f"{name}={raw!r} cannot be written by this user; fix its permissions or pick another file")
    return path


def _choice(*allowed: str) -> Parse:
    """A parser for one of ``allowed`` (case-insensitive)."""

    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
        return value

    return parse


@dataclass(frozen=True)
class _Variable:
    field: str
    env: str
    parse: Parse


_VARIABLES: tuple[_Variable, ...] = (
    _Variable("musl_base_url", "SHIOL_MUSL_BASE_URL", _url),
    _Variable("musl_api_key", "SHIOL_MUSL_API_KEY", _secret),
    _Variable("ny_base_url", "SHIOL_NY_BASE_URL", _url),
    _Variable("http_timeout_s", "SHIOL_HTTP_TIMEOUT_S", _number(0.1, 3600.0)),
    _Variable("http_retries", "SHIOL_HTTP_RETRIES", _number(0, 20, integer=True)),
    _Variable("http_backoff_s", "SHIOL_HTTP_BACKOFF_S", _number(0.0, 600.0)),
    _Variable("http_max_retry_after_s", "SHIOL_HTTP_MAX_RETRY_AFTER_S", _number(0.0, 3600.0)),
    _Variable("http_max_bytes", "SHIOL_HTTP_MAX_BYTES", _number(1, 10**10, integer=True)),
    _Variable("musl_max_dates", "SHIOL_MUSL_MAX_DATES", _number(0, 10_000, integer=True)),
    _Variable("lock_timeout_s", "SHIOL_LOCK_TIMEOUT_S", _number(0.0, 86_400.0)),
    _Variable("notebooks_dir", "SHIOL_NOTEBOOKS_DIR", _path),
    _Variable("run_timeout_s", "SHIOL_RUN_TIMEOUT_S", _number(1.0, 7 * 86_400.0)),
    _Variable("pipeline_cron", "SHIOL_PIPELINE_CRON", _text),
    _Variable("update_cron", "SHIOL_UPDATE_CRON", _text),
    _Variable("evaluation_cron", "SHIOL_EVALUATION_CRON", _text),
    _Variable("grace_s", "SHIOL_GRACE_S", _number(0.0, 30 * 86_400.0)),
    _Variable("draw_delay_s", "SHIOL_DRAW_DELAY_S", _number(0.0, 86_400.0)),
    _Variable("retry_backoff_s", "SHIOL_RETRY_BACKOFF_S", _seconds_list),
    _Variable("waiting_deadline_s", "SHIOL_WAITING_DEADLINE_S", _number(60.0, 7 * 86_400.0)),
    _Variable("heartbeat_s", "SHIOL_HEARTBEAT_S", _number(0.1, 3600.0)),
    _Variable("heartbeat_stale_s", "SHIOL_HEARTBEAT_STALE_S", _number(1.0, 86_400.0)),
    _Variable("alert_after_failures", "SHIOL_ALERT_AFTER_FAILURES", _number(1, 1000, integer=True)),
    _Variable("alert_dedup_s", "SHIOL_ALERT_DEDUP_S", _number(0.0, 30 * 86_400.0)),
    _Variable("alert_webhook_url", "SHIOL_ALERT_WEBHOOK_URL", _optional_url),
    _Variable("smtp_host", "SHIOL_SMTP_HOST", _optional_text),
    _Variable("smtp_port", "SHIOL_SMTP_PORT", _number(1, 65535, integer=True)),
    _Variable("alert_email_from", "SHIOL_ALERT_EMAIL_FROM", _optional_text),
    _Variable("alert_email_to", "SHIOL_ALERT_EMAIL_TO", _optional_text),
    _Variable("api_host", "SHIOL_API_HOST", _text),
    _Variable("api_port", "SHIOL_API_PORT", _number(0, 65535, integer=True)),  # 0: any free port (tests)
    _Variable("api_token", "SHIOL_API_TOKEN", _secret),
    _Variable("lab_port", "SHIOL_LAB_PORT", _number(0, 65535, integer=True)),
    _Variable("lab_token", "SHIOL_LAB_TOKEN", _secret),
    _Variable("scheduler_cycle_s", "SHIOL_SCHEDULER_CYCLE_S", _number(0.05, 60.0)),
    _Variable("plan_max_age_s", "SHIOL_PLAN_MAX_AGE_S", _number(1.0, 86_400.0)),
    _Variable("ledger_key", "SHIOL_LEDGER_KEY", _secret),
    _Variable("dask_address", "SHIOL_DASK_ADDRESS", _optional_text),
    _Variable("log_file", "SHIOL_LOG_FILE", _log_file),
    _Variable("log_max_bytes", "SHIOL_LOG_MAX_BYTES", _number(1024, 10**12, integer=True)),
    _Variable("log_backups", "SHIOL_LOG_BACKUPS", _number(0, 1000, integer=True)),
    _Variable("log_format", "SHIOL_LOG_FORMAT", _choice(*LOG_FORMATS)),
    _Variable("step_memory_mb", "SHIOL_STEP_MEMORY_MB", _number(0, 10**7, integer=True)),
    _Variable("kernel_template", "SHIOL_KERNEL_TEMPLATE", _choice("on", "off")),
    _Variable("jobs_file", "SHIOL_JOBS_FILE", _optional_path),
)
_FIELDS = {spec.name: spec for spec in fields(Settings)}
ENV_NAMES = {
    "home": "SHIOL_HOME",
    "db_path": "SHIOL_DB_PATH",
    "runs_dir": "SHIOL_RUNS_DIR",
    **{v.field: v.env for v in _VARIABLES},
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read ``SHIOL_*`` variables from ``env`` (default: the process environment).

    An unset or empty variable takes its default; a bad value raises :class:`ConfigError` naming the
    variable, the value and what is allowed. Numbers are ASCII digits only, URLs need a host, keys and
    tokens that are set must not be blank, and a log file's folder must exist (the path not a folder).
    """
    env = os.environ if env is None else env
    home = default_home(env)
    db_path = _path("SHIOL_DB_PATH", env["SHIOL_DB_PATH"]) if env.get("SHIOL_DB_PATH") else None
    db_path = db_path or home / "var" / "shiol.duckdb"
    runs_dir = _path("SHIOL_RUNS_DIR", env["SHIOL_RUNS_DIR"]) if env.get("SHIOL_RUNS_DIR") else home / "runs"
    values: dict[str, Any] = {}
    for variable in _VARIABLES:
        raw = env.get(variable.env)
        if raw and (raw.strip() or variable.parse is _secret):  # a blank secret is refused, not unset
            values[variable.field] = variable.parse(variable.env, raw)
    return Settings(home=home, db_path=db_path, snapshot_path=snapshot_path_for(db_path), runs_dir=runs_dir, **values)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The ``SHIOL_*`` variables that :func:`load_settings` turns back into exactly ``settings``.

    Floats are written with ``repr`` (exact round trip); settings that are ``None`` are left out.
    Holds the secrets too: hand it to a child process's environment or stdin, never to a log or argv.
    """
    env = {
        "SHIOL_HOME": str(settings.home),
        "SHIOL_DB_PATH": str(settings.db_path),
        "SHIOL_RUNS_DIR": str(settings.runs_dir),
    }
    for variable in _VARIABLES:
        value = getattr(settings, variable.field)
        if value is None:
            continue
        if isinstance(value, tuple):
            env[variable.env] = ",".join(repr(float(v)) for v in value)
        elif isinstance(value, float):
            env[variable.env] = repr(value)
        else:
            env[variable.env] = str(value)
    return env


def default_home(env: Mapping[str, str]) -> Path:
    """Where the store and archive live: ``SHIOL_HOME``, else the per-user data folder, never the cwd.

    The per-user folder follows the XDG base directory rules (what platformdirs answers on Linux):
    ``$XDG_DATA_HOME/shiol`` when that is an absolute path, else ``~/.local/share/shiol``.
    """
    if env.get("SHIOL_HOME"):
        return Path(env["SHIOL_HOME"]).expanduser().resolve()
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return (base / APP_NAME).expanduser().resolve()


def child_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child that must see exactly ``settings`` (papermill and its kernel, JupyterLab).

    ``base`` (default: this process's environment) with its ``SHIOL_*`` variables replaced.
    """
    inherited = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("SHIOL_")}
    return {**inherited, **settings_to_env(settings)}


def snapshot_path_for(db_path: Path) -> Path:
    """The reader snapshot that lives beside a store file: ``<name>.snapshot.duckdb``."""
    return Path(db_path).with_suffix(".snapshot.duckdb")
