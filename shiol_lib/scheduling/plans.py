"""The planner's inputs and outputs: job schedules, its configuration, the history it reads, the plan.

Plain data with no behaviour beyond validation and JSON rendering; :mod:`shiol_lib.scheduling.planner`
holds the rules that turn a :class:`History` into a :class:`Plan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from shiol_lib.domain.draw_calendar import Coverage, iso_et, iso_utc
from shiol_lib.domain.runs import IncidentKind, MissedKind, RunStatus, Trigger
from shiol_lib.domain.slots import CatchUp, CronSpec, ScheduleError, parse_cron
from shiol_lib.jobs.catalog import ScheduleKind, scheduled_jobs
from shiol_lib.settings import Settings
from shiol_lib.settings import default as setting_default

if TYPE_CHECKING:  # the planner stays pure: the scheduler finds the dead runs (jobs.liveness reads the store)
    from shiol_lib.jobs.definitions.spec import JobSpec
    from shiol_lib.jobs.liveness import DeadRun


class JobSchedule(NamedTuple):
    """A job's cron slots, whether each run processes a drawing, and its own policy.

    ``None`` for a policy field means the :class:`PlannerConfig`'s value; the defaults are the built-in
    jobs' behaviour. ``draw_delay_s`` is an after-drawing job's delay; ``writes_store`` serializes the
    job with every other job that writes the store.
    """

    spec: CronSpec
    drawing_linked: bool = False
    catch_up: CatchUp | str = CatchUp.LATEST
    max_catch_up: int | None = None
    grace_s: float | None = None
    retry_backoff_s: tuple[float, ...] | None = None  # () for no retry
    failure_alert_after: int | None = None
    draw_delay_s: float | None = None
    writes_store: bool = False


def job_schedules(settings: Settings | None = None) -> dict[str, JobSchedule]:
    """Each scheduled job of the catalog with its cron from ``settings`` (default: the settings' defaults).

    A bad cron expression raises :class:`ScheduleError` naming where it came from (``SHIOL_PIPELINE_CRON``).
    The built-in jobs all write the store (``store = "write"`` in their definitions).
    """
    schedules = {}
    for job in scheduled_jobs():
        try:
            spec = parse_cron(job.cron_expression(settings))
        except ScheduleError as err:
            raise ScheduleError(f"{job.cron_source}: {err}") from err
        schedules[job.name] = JobSchedule(spec, drawing_linked=job.drawing_linked, writes_store=True)
    return schedules


def schedules_from(definitions: Mapping[str, JobSpec]) -> tuple[dict[str, JobSchedule], frozenset[str]]:
    """The planned jobs' schedules from their definitions, and the store writers the planner does not plan.

    A built-in job keeps the settings' grace, delay, retries and alert threshold unless its
    definition sets them; an analyst's job takes its own. Paused and manual jobs are not planned.
    """
    schedules = {}
    for name, job in definitions.items():
        if not job.planned:
            continue
        try:
            spec = job.schedule.cron_spec()
        except ScheduleError as err:
            raise ScheduleError(f"job {name} ({job.source}): {err}") from err
        linked = job.schedule.kind == ScheduleKind.AFTER_DRAWING
        schedules[name] = JobSchedule(
            spec,
            drawing_linked=linked,
            catch_up=job.catch_up,
            max_catch_up=job.max_catch_up,
            grace_s=job.grace_s,
            retry_backoff_s=job.retry_backoff_s,
            failure_alert_after=job.alert_after_failures,
            draw_delay_s=job.schedule.delay_s if linked and not job.builtin else None,
            writes_store=job.writes_store,
        )
    writers = frozenset(name for name, job in definitions.items() if job.writes_store and name not in schedules)
    return schedules, writers


def default_jobs() -> dict[str, JobSchedule]:
    """The catalog's scheduled jobs on their default crons (the pipeline after each drawing, and the others)."""
    return job_schedules()


@dataclass(frozen=True)
class PlannerConfig:
    """Job schedules and the timing rules of the planner (all durations in seconds).

    ``store_writers`` names jobs that write the store but are not planned (paused, manual): a run of
    theirs in flight holds back every ``writes_store`` job too.
    """

    jobs: Mapping[str, JobSchedule] = field(default_factory=default_jobs)
    grace_s: float = setting_default("grace_s")  # an unsettled slot older than this is missed, not run
    draw_delay_s: float = setting_default("draw_delay_s")  # a drawing is owed this long after 22:59 ET
    retry_backoff_s: tuple[float, ...] = setting_default("retry_backoff_s")  # after attempt 1, 2, 3 failed
    waiting_deadline_s: float = setting_default("waiting_deadline_s")  # then a `waiting` drawing is missed
    heartbeat_stale_s: float = setting_default("heartbeat_stale_s")  # a silent `running` row is crashed
    failure_alert_after: int = setting_default("alert_after_failures")  # alert after N failures in a row
    on_time_s: float = 60.0  # a lone pending slot at most this old is `on-time`, else `catch-up`
    max_catch_up: int = 10  # catch_up "each": at most this many pending slots run
    store_writers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        jobs = {}
        for name, schedule in self.jobs.items():
            schedule = schedule if isinstance(schedule, JobSchedule) else JobSchedule(*schedule)
            if not isinstance(schedule.spec, CronSpec):
                raise ScheduleError(
                    f"job {name!r}: schedule must hold a CronSpec (use parse_cron), got {schedule.spec!r}"
                )
            jobs[name] = _checked(name, schedule)
        object.__setattr__(self, "jobs", jobs)
        object.__setattr__(self, "retry_backoff_s", tuple(float(s) for s in self.retry_backoff_s))
        object.__setattr__(self, "store_writers", frozenset(self.store_writers))
        if not self.retry_backoff_s or min(self.retry_backoff_s) <= 0:
            raise ScheduleError(f"retry_backoff_s must hold at least one positive delay, got {self.retry_backoff_s}")
        for name in ("grace_s", "draw_delay_s", "waiting_deadline_s", "heartbeat_stale_s", "on_time_s"):
            if getattr(self, name) < 0:
                raise ScheduleError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("failure_alert_after", "max_catch_up"):
            if getattr(self, name) < 1:
                raise ScheduleError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one retry per backoff delay (a job's own: ``job_policy(config, job)``)."""
        return 1 + len(self.retry_backoff_s)


def _checked(name: str, s: JobSchedule) -> JobSchedule:
    """``s`` with its values normalized; a value the planner cannot use raises :class:`ScheduleError`."""
    try:
        catch_up = CatchUp(s.catch_up)
    except ValueError:
        raise ScheduleError(f"job {name!r}: catch_up {s.catch_up!r} is not one of latest, none, each") from None
    backoff = None if s.retry_backoff_s is None else tuple(float(d) for d in s.retry_backoff_s)
    for field_name, value, low in (
        ("grace_s", s.grace_s, 0),
        ("draw_delay_s", s.draw_delay_s, 0),
        ("max_catch_up", s.max_catch_up, 1),
        ("failure_alert_after", s.failure_alert_after, 1),
        ("retry_backoff_s", min(backoff) if backoff else None, 1e-9),
    ):
        if value is not None and value < low:
            raise ScheduleError(f"job {name!r}: {field_name} must be >= {low:g}, got {value}")
    return s._replace(drawing_linked=bool(s.drawing_linked), catch_up=catch_up, retry_backoff_s=backoff)


class RunLike(Protocol):
    """What the planner reads from a run record (``store.runs.RunRow`` qualifies); read-only."""

    @property
    def run_id(self) -> str:
        """The run's id."""

    @property
    def job(self) -> str:
        """The job's name."""

    @property
    def slot(self) -> datetime | None:
        """The slot the run belongs to, if any."""

    @property
    def trigger(self) -> Trigger | str:
        """A Trigger value (rows hold the plain text)."""

    @property
    def status(self) -> RunStatus | str:
        """A RunStatus value: the planner refuses any other."""

    @property
    def started_at(self) -> datetime:
        """When the run started."""

    @property
    def finished_at(self) -> datetime | None:
        """When the run finished, if it did."""

    @property
    def attempt(self) -> int:
        """The attempt number, from 1."""

    @property
    def draw_date(self) -> date | None:
        """The drawing the run processes, if any."""

    @property
    def heartbeat_at(self) -> datetime | None:
        """The run's last heartbeat, if any."""


class SlotLike(Protocol):
    """A recorded missed slot or unresolved dead letter (``missed_slots`` / ``dead_letters`` rows); read-only."""

    @property
    def job(self) -> str:
        """The job's name."""

    @property
    def slot(self) -> datetime | None:
        """The recorded slot, if any."""

    @property
    def draw_date(self) -> date | None:
        """The recorded drawing, if any."""


@dataclass(frozen=True)
class RunRecord:
    """A run record with the fields of ``store.runs.RunRow`` the planner uses."""

    run_id: str
    job: str
    slot: datetime | None
    trigger: Trigger | str  # a Trigger value (rows hold the plain text)
    status: RunStatus | str  # a RunStatus value: the planner refuses any other
    started_at: datetime
    finished_at: datetime | None = None
    attempt: int = 1
    draw_date: date | None = None
    pid: int | None = None
    host: str | None = None
    heartbeat_at: datetime | None = None


@dataclass(frozen=True)
class SlotRecord:
    """A (job, slot, drawing) entry of the missed-slots or dead-letters table."""

    job: str
    slot: datetime | None
    draw_date: date | None = None


@dataclass(frozen=True)
class History:
    """The execution history the planner reads: runs of all jobs, missed slots, unresolved dead letters.

    ``scheduler_started`` is the scheduler's first start on this store (every job is in service from
    then on); ``since`` is where the history read from the store begins (nothing older is reported
    missed: the store's record of it is not in the history).
    """

    runs: Sequence[RunLike] = ()
    missed: Sequence[SlotLike] = ()
    dead_letters: Sequence[SlotLike] = ()
    scheduler_started: datetime | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Due:
    """A run to start now: which job and slot, why, for which drawing, as which attempt."""

    job: str
    slot: datetime
    reason: Trigger
    draw_date: date | None
    attempt: int


@dataclass(frozen=True)
class Missed:
    """A slot (kind ``slot``) or a drawing (kind ``draw``) that will not be run and should be recorded."""

    job: str
    slot: datetime
    draw_date: date | None
    kind: MissedKind


@dataclass(frozen=True)
class Incident:
    """One problem, however many plans show it: opened once, cleared once (one alert each).

    ``key`` is stable for the life of the problem: ``<job>:missed-draw:<drawing>`` or
    ``<job>:failures:<the streak's first run id>``.
    """

    key: str
    kind: IncidentKind
    job: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What is due at ``at``, what is newly missed, each job's next slot, and the alerts to raise.

    ``alerts`` are the messages of ``incidents``. ``wake_at`` is the first instant after ``at`` at
    which the plan can change by the clock alone (a next slot, a retry's due time, a drawing owed or
    missed); a new run or record changes it too.
    """

    at: datetime
    due: list[Due]
    missed: list[Missed]
    next: dict[str, datetime]
    alerts: list[str]
    wake_at: datetime | None = None
    incidents: list[Incident] = field(default_factory=list)  # the problems behind ``alerts``
    draws: Coverage | None = None  # the store's drawings against the calendar at ``at`` (None: not read)
    dead_runs: list[DeadRun] = field(default_factory=list)  # still `running`, process gone (not closed yet)
    # the jobs file's problems while the last good definitions stay in force: file, job, field, reason
    definitions: list[dict[str, str | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data.

        Instants in ISO-8601 with their New York offset, each with a ``*_utc`` twin in UTC (``next``
        has ``next_utc``); ``draws`` counts the expected drawings the store lacks up to ``at``; ``dead_runs``
        names the runs still recorded ``running`` whose process is gone.
        """
        return {
            "at": iso(self.at),
            "at_utc": iso_utc(self.at),
            "due": [
                {
                    "job": d.job,
                    "slot": iso(d.slot),
                    "slot_utc": iso_utc(d.slot),
                    "reason": d.reason,
                    "draw_date": _iso_date(d.draw_date),
                    "attempt": d.attempt,
                }
                for d in self.due
            ],
            "missed": [
                {
                    "job": m.job,
                    "slot": iso(m.slot),
                    "slot_utc": iso_utc(m.slot),
                    "draw_date": _iso_date(m.draw_date),
                    "kind": m.kind,
                }
                for m in self.missed
            ],
            "next": {job: iso(slot) for job, slot in self.next.items()},
            "next_utc": {job: iso_utc(slot) for job, slot in self.next.items()},
            "alerts": list(self.alerts),
            "wake_at": iso(self.wake_at) if self.wake_at is not None else None,
            "wake_at_utc": iso_utc(self.wake_at) if self.wake_at is not None else None,
            "draws": self.draws.as_dict() if self.draws is not None else None,
            "dead_runs": [d.as_dict() for d in self.dead_runs],
            "definitions": list(self.definitions),
        }


def iso(at: datetime) -> str:
    """An instant as ISO-8601 with its New York offset (the planner's one time convention)."""
    return iso_et(at)


def json_ready(value: Any) -> Any:
    """Dataclasses, lists and dicts as JSON-ready data, in the one time convention of the JSON outputs.

    An instant is ISO-8601 with its New York offset; a dataclass field ``name`` typed as an instant
    gets a ``name_utc`` twin in UTC (None when the instant is). Dates are ISO dates.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            out[f.name] = json_ready(item)
            if isinstance(item, datetime) or "datetime" in str(f.type):  # an instant field, set or not
                out[f"{f.name}_utc"] = iso_utc(item) if isinstance(item, datetime) else None
        return out
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return iso_et(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _iso_date(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None
