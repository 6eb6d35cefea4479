"""A job definition's types: the :class:`JobSpec` and its :class:`Schedule`, and the field rules they share.

:mod:`shiol_lib.jobs.definitions` reads them from the job files; everything else only reads these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from shiol_lib.domain.draw_calendar import DRAW_TIME
from shiol_lib.domain.slots import CatchUp, CronSpec, ScheduleError, parse_cron
from shiol_lib.jobs.catalog import ScheduleKind, Step

DEFAULT_TIMEZONE = "America/New_York"
DRAW_WEEKDAYS = (1, 3, 6)  # cron numbering: the drawings on Monday, Wednesday and Saturday
FIELDS = (
    "name",
    "description",
    "notebooks",
    "parameters",
    "schedule",
    "catch_up",
    "max_catch_up",
    "grace",
    "timeout",
    "retries",
    "alert_after_failures",
    "store",
    "secrets",
    "environment",
    "keep_days",
    "paused",
)
BUILTIN_OVERRIDABLE = (
    "schedule",
    "timeout",
    "retries",
    "keep_days",
    "paused",
)  # what jobs.toml may change of a built-in job
HANDED = ("run_id", "job", "scheduled_at", "draw_date", "db_path")  # given to every run, never set by a definition
SCHEDULE_KEYS = ("cron", "timezone", "after_drawing")
SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class StoreAccess(StrEnum):
    """How a job's kernels reach the store."""

    READ = "read"  # the reader snapshot: never blocks a writer
    WRITE = "write"  # the store itself, serialized with every other writer


class EnvironmentPolicy(StrEnum):
    """What a run does when its installed packages differ from the job's last successful run."""

    WARN = "warn"
    STRICT = "strict"


@dataclass(frozen=True)
class Schedule:
    """When a job runs: on ``cron`` slots in ``timezone``, ``delay_s`` after each drawing, or by hand.

    An after-drawing schedule may carry a ``cron`` too (the built-in pipeline's ``SHIOL_PIPELINE_CRON``):
    its slots, each owed to the drawing before it.
    """

    kind: ScheduleKind = ScheduleKind.MANUAL
    cron: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    delay_s: float | None = None

    def describe(self) -> str:
        """One line for people: ``cron 0 7 * * 1 (America/New_York)``, ``30 min after each drawing``."""
        if self.kind == ScheduleKind.MANUAL:
            return "manual"
        cron = f"cron {self.cron} ({self.timezone})" if self.cron else ""
        if self.kind == ScheduleKind.CRON:
            return cron
        after = f"{(self.delay_s or 0) / 60:g} min after each drawing"
        return f"{after}, at {cron}" if cron else after

    def cron_spec(self) -> CronSpec:
        """The slots the scheduler plans: the cron in its timezone, or ``delay_s`` after each drawing.

        An after-drawing schedule without a cron gets the draw days' 22:59 ET plus its delay, rounded
        up to the minute. A manual schedule has no slots (:class:`ScheduleError`).
        """
        if self.cron is not None:
            return parse_cron(self.cron, self.timezone)
        if self.kind != ScheduleKind.AFTER_DRAWING:
            raise ScheduleError("a manual job has no slots")
        minutes = DRAW_TIME.hour * 60 + DRAW_TIME.minute + math.ceil((self.delay_s or 0.0) / 60)
        days, minute = divmod(minutes, 24 * 60)
        weekdays = ",".join(str((day + days) % 7) for day in DRAW_WEEKDAYS)
        return parse_cron(f"{minute % 60} {minute // 60} * * {weekdays}", DEFAULT_TIMEZONE)


@dataclass(frozen=True)
class JobSpec:
    """One job definition. ``None`` for grace, timeout, retries, alerts and keep_days: the settings' value."""

    name: str
    notebooks: tuple[Path, ...]
    schedule: Schedule = Schedule()
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = CatchUp.LATEST
    max_catch_up: int | None = None
    grace_s: float | None = None
    timeout_s: float | None = None
    retry_backoff_s: tuple[float, ...] | None = None
    alert_after_failures: int | None = None
    store: StoreAccess = StoreAccess.READ
    secrets: tuple[str, ...] = ()
    environment: EnvironmentPolicy = EnvironmentPolicy.WARN
    keep_days: int | None = None
    paused: bool = False
    builtin: bool = False
    source: str = ""  # the file that defined it (last): the built-in file or the jobs file
    steps: tuple[Step, ...] = ()  # what runs: a built-in job's catalog steps, or one step per notebook

    @property
    def planned(self) -> bool:
        """Whether the scheduler plans this job on slots (a manual or paused job runs only by hand)."""
        return self.schedule.kind != ScheduleKind.MANUAL and not self.paused

    @property
    def writes_store(self) -> bool:
        """Whether the job's kernels write the store (serialized with every other writer)."""
        return self.store == StoreAccess.WRITE

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as text, enums as their values (secrets are names only, never values)."""
        return {
            "name": self.name,
            "description": self.description,
            "builtin": self.builtin,
            "source": self.source,
            "notebooks": [str(p) for p in self.notebooks],
            "parameters": dict(self.parameters),
            "schedule": {
                "kind": str(self.schedule.kind),
                "cron": self.schedule.cron,
                "timezone": self.schedule.timezone,
                "delay_s": self.schedule.delay_s,
            },
            "catch_up": str(self.catch_up),
            "max_catch_up": self.max_catch_up,
            "grace_s": self.grace_s,
            "timeout_s": self.timeout_s,
            "retry_backoff_s": None if self.retry_backoff_s is None else list(self.retry_backoff_s),
            "alert_after_failures": self.alert_after_failures,
            "store": str(self.store),
            "secrets": list(self.secrets),
            "environment": str(self.environment),
            "keep_days": self.keep_days,
            "paused": self.paused,
        }


def cron_problem(expr: object) -> str | None:
    """Why ``expr`` is not a usable 5-field cron expression (None when it is); it must fire some day."""
    if not isinstance(expr, str):
        return f"must be a string, got {type(expr).__name__}"
    try:
        parse_cron(expr)
    except ScheduleError as err:
        return str(err)
    return None


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a text such as ``90s``, ``30m``, ``1h30m``, ``2d``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and _DURATION.match(value.strip()):
        return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(value.strip()))
    raise ValueError(f"{value!r} is not a duration: seconds (a number >= 0) or text like '90s', '30m', '1h30m', '2d'")
