"""Reading the job files: the built-in jobs and the analyst's ``jobs.toml``, parsed and validated.

Both files hold ``[[job]]`` tables in one format (README "Analyst jobs"). :func:`parse_jobs` reads one
file's text with :mod:`tomllib` and validates every table, collecting each problem (file, job, field,
reason) into one :class:`~shiol_lib.errors.JobsFileError`. :func:`effective_jobs` is the one place the
precedence lives: the jobs file > ``SHIOL_PIPELINE_CRON`` and friends > the built-in file.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shiol_lib.errors import JobsFileError, JobsFileProblem, ParameterError, RunnerError
from shiol_lib.jobs.catalog import JOBS, ScheduleKind, Step
from shiol_lib.jobs.definitions.spec import (
    BUILTIN_OVERRIDABLE,
    DEFAULT_TIMEZONE,
    ENV_NAME,
    FIELDS,
    HANDED,
    SCHEDULE_KEYS,
    SLUG,
    CatchUp,
    EnvironmentPolicy,
    JobSpec,
    Schedule,
    StoreAccess,
    cron_problem,
    parse_duration,
)
from shiol_lib.settings import Settings

if TYPE_CHECKING:  # papermill is imported only where a notebook's parameters are read
    from shiol_lib.execution.parameters import NotebookParameter

BUILTIN_FILE = Path(__file__).with_name("builtin_jobs.toml")
log = logging.getLogger(__name__)


def parse_jobs(
    text: str, *, file: Path, notebooks_dir: Path, builtins: Mapping[str, JobSpec] | None = None, inspect: bool = True
) -> list[JobSpec]:
    """The ``[[job]]`` tables of one file, validated; raises :class:`JobsFileError` listing every problem.

    ``builtins`` is None when ``file`` is the built-in file itself; otherwise a table named like a
    built-in job overrides that job (only :data:`BUILTIN_OVERRIDABLE`). Without ``inspect`` the
    notebooks' parameters cells are not read (a listing that needs no papermill; nothing is run on it).
    """
    label = str(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise JobsFileError([JobsFileProblem(label, None, None, f"not valid TOML: {err}")]) from err
    problems = [
        JobsFileProblem(label, None, key, "unknown top-level key; write each job as a [[job]] table")
        for key in data
        if key != "job"
    ]
    tables = data.get("job", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(JobsFileProblem(label, None, "job", "must be [[job]] tables"))
        tables = []
    specs: list[JobSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        # the built-in file ships with its notebooks: their parameters are not inspected (a light scheduler)
        reader = _JobReader(label, file.parent, notebooks_dir, table, index, inspect=inspect and builtins is not None)
        spec = reader.read(builtins)
        name = table.get("name")
        if isinstance(name, str) and name in seen:
            reader.problem("name", "duplicate name: another [[job]] in this file has it")
        elif spec is not None:
            specs.append(spec)
        seen.add(str(name))
        problems.extend(reader.problems)
    if problems:
        raise JobsFileError(problems)
    return specs


def builtin_jobs(settings: Settings) -> dict[str, JobSpec]:
    """The built-in jobs from :data:`BUILTIN_FILE`, each cron taken from its setting (``SHIOL_*_CRON``)."""
    specs = parse_jobs(
        BUILTIN_FILE.read_text(encoding="utf-8"), file=BUILTIN_FILE, notebooks_dir=settings.notebooks_dir
    )
    jobs: dict[str, JobSpec] = {}
    for spec in specs:
        setting = JOBS[spec.name].cron_setting if spec.name in JOBS else None
        if setting is not None and spec.schedule.cron is not None:
            cron = getattr(settings, setting)
            reason = cron_problem(cron)
            if reason:
                raise JobsFileError([JobsFileProblem(f"SHIOL_{setting.upper()}", spec.name, "schedule.cron", reason)])
            spec = replace(spec, schedule=replace(spec.schedule, cron=cron))
        jobs[spec.name] = replace(spec, builtin=True, steps=JOBS[spec.name].steps)
    return jobs


def effective_jobs(
    settings: Settings, *, file: Path | None = None, text: str | None = None, inspect: bool = True
) -> dict[str, JobSpec]:
    """Every job in force: the built-in ones, then the jobs file's overrides and jobs, by name.

    Precedence of a built-in job's schedule: the jobs file > its ``SHIOL_*_CRON`` variable > the
    built-in file. ``file`` defaults to ``settings.jobs_path`` (a missing file holds no jobs); ``text``
    validates that text as if it were the file's (what an edit would write). ``inspect``: as for
    :func:`parse_jobs`.
    """
    file = file or settings.jobs_path
    jobs = builtin_jobs(settings)
    if text is None:
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return jobs
        except (OSError, UnicodeDecodeError) as err:
            raise JobsFileError([JobsFileProblem(str(file), None, None, f"cannot read: {err}")]) from err
    for spec in parse_jobs(text, file=file, notebooks_dir=settings.notebooks_dir, builtins=jobs, inspect=inspect):
        jobs[spec.name] = spec
    return jobs


def load_job(settings: Settings, name: str, *, text: str | None = None) -> JobSpec:
    """The job ``name`` in force (``text``: the jobs file's text to read instead of the file's).

    Raises :class:`RunnerError` naming the known jobs. A jobs file that does not validate stops only
    its own jobs: a built-in job then runs on its built-in definition (the file's problems are
    logged), an analyst's job raises the file's :class:`JobsFileError`.
    """
    try:
        jobs = effective_jobs(settings, text=text)
    except JobsFileError as err:
        jobs = builtin_jobs(settings)
        if name not in jobs:
            raise
        log.warning("%s; job %s runs on its built-in definition", err, name)
    try:
        return jobs[name]
    except KeyError:
        raise RunnerError(f"unknown job {name!r}; known jobs: {', '.join(jobs)}") from None


class _JobReader:
    """Reads one ``[[job]]`` table, collecting problems instead of stopping at the first."""

    def __init__(
        self, file: str, folder: Path, notebooks_dir: Path, table: dict[str, Any], index: int, *, inspect: bool
    ) -> None:
        self.inspect = inspect
        self.file, self.folder, self.notebooks_dir, self.table = file, folder, notebooks_dir, table
        name = table.get("name")
        self.job = name if isinstance(name, str) and name else f"#{index + 1}"
        self.problems: list[JobsFileProblem] = []
        self.declared: dict[Path, dict[str, NotebookParameter]] = {}  # each readable notebook's parameters

    def problem(self, field_name: str | None, reason: str) -> None:
        """Record one problem of this job."""
        self.problems.append(JobsFileProblem(self.file, self.job, field_name, reason))

    def read(self, builtins: Mapping[str, JobSpec] | None) -> JobSpec | None:
        """The job, or None when a problem was recorded."""
        for key in self.table:
            if key not in FIELDS:
                self.problem(key, f"unknown field; allowed: {', '.join(FIELDS)}")
        name = self.table.get("name")
        if not isinstance(name, str) or not SLUG.match(name):
            self.problem(
                "name",
                f"{name!r} is not a slug: lowercase letters, digits, '-' and '_', starting with a letter, at most 63"
                if name is not None
                else "missing",
            )
            return None
        if builtins is not None and name in builtins:
            spec = self._override(builtins[name])
        elif builtins is not None and name in JOBS:
            self.problem("name", f"{name!r} is a built-in job's name; choose another")
            return None
        else:
            spec = self._job(name)
        return None if self.problems else spec

    def _override(self, base: JobSpec) -> JobSpec:
        for key in self.table:
            if key in FIELDS and key != "name" and key not in BUILTIN_OVERRIDABLE:
                self.problem(
                    key,
                    f"a built-in job's {key} cannot be changed (its steps are fixed); "
                    f"only {', '.join(BUILTIN_OVERRIDABLE)} can",
                )
        schedule = self._schedule(self.table["schedule"]) if "schedule" in self.table else base.schedule
        if schedule.kind not in (base.schedule.kind, ScheduleKind.MANUAL):
            self.problem("schedule", f"a built-in {base.schedule.kind} job keeps that kind (or is made manual)")
        return replace(
            base,
            schedule=schedule,
            timeout_s=self._optional_duration("timeout", base.timeout_s, 1.0),
            retry_backoff_s=self._retries(base.retry_backoff_s),
            keep_days=self._int("keep_days", 1) if "keep_days" in self.table else base.keep_days,
            paused=self._bool("paused", base.paused),
            source=self.file,
        )

    def _job(self, name: str) -> JobSpec:
        notebooks = self._notebooks()
        catch_up = self._choice("catch_up", CatchUp, CatchUp.LATEST)
        max_catch_up = self._int("max_catch_up", 1)
        if max_catch_up is not None and catch_up != CatchUp.EACH:
            self.problem("max_catch_up", 'only with catch_up = "each"')
        description = self.table.get("description", "")
        if not isinstance(description, str):
            self.problem("description", "must be a string")
        return JobSpec(
            name=name,
            notebooks=notebooks,
            description=str(description),
            schedule=self._schedule(self.table.get("schedule", "manual")),
            parameters=self._parameters(notebooks),
            catch_up=catch_up,
            max_catch_up=max_catch_up if max_catch_up is not None or catch_up != CatchUp.EACH else 10,
            grace_s=self._optional_duration("grace", None, 0.0),
            timeout_s=self._optional_duration("timeout", None, 1.0),
            retry_backoff_s=self._retries(None),
            alert_after_failures=self._int("alert_after_failures", 1),
            store=self._choice("store", StoreAccess, StoreAccess.READ),
            secrets=self._secrets(),
            environment=self._choice("environment", EnvironmentPolicy, EnvironmentPolicy.WARN),
            keep_days=self._int("keep_days", 1),
            paused=self._bool("paused", False),
            source=self.file,
            steps=tuple(Step(path.stem, str(path)) for path in notebooks),
        )

    def _notebooks(self) -> tuple[Path, ...]:
        raw = self.table.get("notebooks")
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            self.problem("notebooks", "one notebook path or a non-empty list of them (run in order as steps)")
            return ()
        found: list[Path] = []
        for text in names:
            path = Path(text).expanduser()
            candidates = [path] if path.is_absolute() else [self.notebooks_dir / path, self.folder / path]
            if not self.inspect:  # a built-in job's notebook: in the notebooks folder, checked when it runs
                found.append(candidates[0])
                continue
            hit = next((c for c in candidates if c.is_file()), None)
            if not text.endswith(".ipynb"):
                self.problem("notebooks", f"{text!r} is not a notebook (.ipynb)")
            elif hit is None:
                looked = ", ".join(str(c.parent) for c in candidates)
                self.problem("notebooks", f"{text!r} not found (looked in {looked})")
            else:
                if self.inspect:
                    self._inspect(hit)
                if any(path.stem == hit.stem for path in found):
                    self.problem("notebooks", f"two notebooks are named {hit.name}; each step's files take its name")
                found.append(hit.resolve())
        return tuple(found)

    def _inspect(self, notebook: Path) -> None:
        from shiol_lib.execution.parameters import read_parameters

        try:
            self.declared[notebook.resolve()] = read_parameters(notebook)
        except RunnerError as err:
            self.problem("notebooks", str(err))

    def _parameters(self, notebooks: tuple[Path, ...]) -> dict[str, Any]:
        values = self.table.get("parameters", {})
        if not isinstance(values, dict):
            self.problem("parameters", "must be a table of name = value")
            return {}
        declared = {notebook: self.declared[notebook] for notebook in notebooks if notebook in self.declared}
        for name, value in values.items():
            if name in HANDED:
                self.problem(f"parameters.{name}", f"is handed to every run ({', '.join(HANDED)}); it cannot be set")
            elif isinstance(value, (date, time)):
                self.problem(f"parameters.{name}", "TOML dates and times are not notebook values; quote it")
            elif declared and not any(name in d for d in declared.values()):
                self.problem(f"parameters.{name}", "unknown: no notebook of the job declares it")
        for notebook, params in declared.items():
            given = {k: v for k, v in values.items() if k in params and k not in HANDED}
            given.update({h: "" for h in HANDED if h in params})  # what the run hands over
            try:
                _check_parameters(notebook, given)
            except ParameterError as err:
                for reason in err.problems:
                    self.problem("parameters", f"{notebook.name}: {reason}")
        return dict(values)

    def _schedule(self, raw: object) -> Schedule:
        if raw == "manual":
            return Schedule()
        if not isinstance(raw, dict):
            self.problem("schedule", 'write "manual", { cron = "0 7 * * 1" } or { after_drawing = "30m" }')
            return Schedule()
        for key in raw:
            if key not in SCHEDULE_KEYS:
                self.problem(f"schedule.{key}", f"unknown field; allowed: {', '.join(SCHEDULE_KEYS)}")
        timezone = raw.get("timezone", DEFAULT_TIMEZONE)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            self.problem("schedule.timezone", f"unknown timezone {timezone!r} (an IANA name like America/New_York)")
        cron = raw.get("cron")
        if cron is not None and (reason := cron_problem(cron)):
            self.problem("schedule.cron", reason)
        if "after_drawing" in raw:
            try:
                delay = parse_duration(raw["after_drawing"])
            except ValueError as err:
                self.problem("schedule.after_drawing", str(err))
                delay = 0.0
            return Schedule(ScheduleKind.AFTER_DRAWING, cron, str(timezone), delay)
        if cron is None:
            self.problem("schedule", "needs cron (with an optional timezone) or after_drawing")
        return Schedule(ScheduleKind.CRON, cron, str(timezone))

    def _retries(self, default: tuple[float, ...] | None) -> tuple[float, ...] | None:
        raw = self.table.get("retries")
        if raw is None:
            return default
        if not isinstance(raw, list):
            self.problem("retries", 'the wait before each retry, e.g. ["1m", "2m", "4m"] ([] for none)')
            return default
        try:
            return tuple(parse_duration(v) for v in raw)
        except ValueError as err:
            self.problem("retries", str(err))
            return default

    def _optional_duration(self, key: str, default: float | None, minimum: float) -> float | None:
        if key not in self.table:
            return default
        try:
            seconds = parse_duration(self.table[key])
        except ValueError as err:
            self.problem(key, str(err))
            return default
        if seconds < minimum:
            self.problem(key, f"must be at least {minimum:g} s")
        return seconds

    def _int(self, key: str, minimum: int) -> int | None:
        value = self.table.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
            self.problem(key, f"must be a whole number >= {minimum}, got {value!r}")
            return None
        return value

    def _bool(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {value!r}")
            return default
        return value

    def _choice(self, key: str, kind: type[StrEnum], default: Any) -> Any:
        value = self.table.get(key, str(default))
        try:
            return kind(value)
        except ValueError:
            self.problem(key, f"{value!r} is not one of {', '.join(repr(str(k)) for k in kind)}")
            return default

    def _secrets(self) -> tuple[str, ...]:
        raw = self.table.get("secrets", [])
        if not isinstance(raw, list):
            self.problem("secrets", "a list of environment variable names")
            return ()
        for name in raw:
            if not isinstance(name, str) or not ENV_NAME.match(name):
                self.problem("secrets", f"{name!r} is not an environment variable name (letters, digits, _)")
        return tuple(str(n) for n in raw)


def _check_parameters(notebook: Path, given: Mapping[str, Any]) -> None:
    from shiol_lib.execution.parameters import check_parameters

    check_parameters(notebook, given)
