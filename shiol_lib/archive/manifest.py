"""The run manifest: what one run was asked to do, what each step did, and what it produced.

:class:`Manifest` is the typed hand-off between the job runner (which writes it), the archive, the
index, run comparison and the CLI (which read it). ``manifest.json`` is its :meth:`Manifest.to_json`:
the same keys as schema 1 plus ``schema`` 2 and the ``artefacts`` hashes; :meth:`Manifest.from_json`
reads both and refuses anything else with an :class:`ArchiveError` that names the fault, so a
hostile or damaged file never surfaces as a ``TypeError`` somewhere downstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)


class ManifestError(ArchiveError):
    """A manifest file that is not a manifest (not JSON, wrong shape, unknown schema)."""


@dataclass
class StepRecord:
    """One step of a run as the manifest records it; the fields after ``status`` are set once it ran."""

    name: str
    notebook: str
    status: StepStatus = StepStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parameters: dict[str, Any] | None = None
    output: str | None = None  # the executed notebook's file name in the run folder
    html: str | None = None
    log: str | None = None
    error: str | None = None
    error_class: str | None = None
    failed_cell: int | None = None  # index of the failing cell in the source notebook
    command: str | None = None  # the papermill command that re-runs this step on its own
    peak_rss_mb: float | None = None  # peak resident memory of the step's process tree (papermill, kernel)
    cpu_s: float | None = None  # CPU seconds (user + system) of that tree

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (ms precision), derived; None until the step finished."""
        return _seconds_between(self.started_at, self.finished_at)


@dataclass
class Manifest:
    """Everything ``manifest.json`` holds about one run."""

    run_id: str
    job: str
    trigger: str
    status: RunStatus
    started_at: datetime
    steps: list[StepRecord]
    slot: datetime | None = None
    draw_date: date | None = None
    attempt: int = 1
    finished_at: datetime | None = None
    seed: int | None = None
    parent_run_id: str | None = None
    target_draw_date: date | None = None
    history_end: date | None = None
    input: dict[str, Any] = field(default_factory=dict)  # draws_sha256, draw_count, first/last draw
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> sha256 (store rows)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> key numbers
    artefacts: dict[str, str] = field(default_factory=dict)  # file name in the run folder -> sha256
    code: dict[str, Any] = field(default_factory=dict)  # git_commit, git_dirty
    environment: dict[str, Any] = field(default_factory=dict)  # python, platform, package versions
    error: str | None = None
    error_class: str | None = None  # the run's error class (cell error, timeout, memory, fetch, ...)
    schema: int = SCHEMA_VERSION

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (ms precision), derived; None while the run is open."""
        return _seconds_between(self.started_at, self.finished_at)

    @property
    def peak_rss_mb(self) -> float | None:
        """The largest step's peak resident memory (steps run one after another), derived from the steps."""
        return run_totals(self.steps)[0]

    @property
    def cpu_s(self) -> float | None:
        """CPU seconds of every step's process tree, summed, derived from the steps."""
        return run_totals(self.steps)[1]

    def step(self, name: str) -> StepRecord:
        """The step called ``name``; ``KeyError`` when the run has none."""
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: instants and dates as ISO-8601 text, statuses as their strings."""
        data = {f.name: _dump(getattr(self, f.name)) for f in fields(self) if f.name != "steps" and _kept(self, f.name)}
        data["duration_s"] = self.duration_s  # derived, written as before for the readers of the file
        if self.status not in (RunStatus.RUNNING, RunStatus.CRASHED):  # totals of a run closed in order
            data.update(
                {
                    name: value
                    for name, value in zip(("peak_rss_mb", "cpu_s"), run_totals(self.steps), strict=True)
                    if value is not None
                }
            )
        data["steps"] = [
            {f.name: _dump(getattr(s, f.name)) for f in fields(s) if _kept(s, f.name)} | {"duration_s": s.duration_s}
            for s in self.steps
        ]
        return data

    def to_json(self) -> str:
        """The canonical text (sorted keys, fixed separators): equal manifests hash equal."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1, default=str)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "manifest") -> Manifest:
        """Read a decoded manifest (schema 1 or 2); raise :class:`ManifestError` naming what is wrong."""
        if not isinstance(data, dict):
            raise ManifestError(f"{where} is a JSON {type(data).__name__}, not a manifest object")
        schema = data.get("schema", 1)
        if schema not in READABLE_SCHEMAS:
            raise ManifestError(f"{where} has schema {schema!r}; this workbench reads {READABLE_SCHEMAS}")
        reader = _Reader(data, where)
        for derived in _DERIVED_RUN_FIELDS:  # recomputed from the instants and the steps; still checked
            reader.number(derived)
        steps = data.get("steps", [])
        if not isinstance(steps, list):
            raise ManifestError(f"{where}: 'steps' is not a list")
        return cls(
            run_id=reader.text("run_id"),
            job=reader.text("job"),
            trigger=reader.text("trigger", default="manual"),
            status=reader.status("status", RunStatus),
            started_at=reader.required_instant("started_at"),
            steps=[_step(item, f"{where} step {i + 1}") for i, item in enumerate(steps)],
            slot=reader.instant("slot"),
            draw_date=reader.day("draw_date"),
            attempt=reader.count("attempt", default=1),
            finished_at=reader.instant("finished_at"),
            seed=reader.whole("seed"),
            parent_run_id=reader.optional_text("parent_run_id"),
            target_draw_date=reader.day("target_draw_date"),
            history_end=reader.day("history_end"),
            input=reader.mapping("input"),
            outputs=reader.mapping("outputs"),
            metrics=reader.mapping("metrics"),
            artefacts=reader.mapping("artefacts"),
            code=reader.mapping("code"),
            environment=reader.mapping("environment"),
            error=reader.optional_text("error"),
            error_class=reader.optional_text("error_class"),
            schema=schema,  # as written: schema 1 recorded no artefact hashes
        )

    @classmethod
    def from_json(cls, text: str, *, where: str = "manifest") -> Manifest:
        """Parse ``manifest.json`` text; raise :class:`ManifestError` on anything that is not a manifest."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise ManifestError(f"{where} is not valid JSON ({err}); the archive was altered") from err
        return cls.from_dict(data, where=where)


def _step(data: Any, where: str) -> StepRecord:
    if not isinstance(data, dict):
        raise ManifestError(f"{where} is not an object")
    reader = _Reader(data, where)
    reader.number("duration_s")  # derived from the step's instants; still checked
    parameters = data.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ManifestError(f"{where}: 'parameters' is not an object")
    return StepRecord(
        name=reader.text("name"),
        notebook=reader.text("notebook", default=""),
        status=reader.status("status", StepStatus),
        started_at=reader.instant("started_at"),
        finished_at=reader.instant("finished_at"),
        parameters=parameters,
        output=reader.optional_text("output"),
        html=reader.optional_text("html"),
        log=reader.optional_text("log"),
        error=reader.optional_text("error"),
        error_class=reader.optional_text("error_class"),
        failed_cell=reader.whole("failed_cell"),
        command=reader.optional_text("command"),
        peak_rss_mb=reader.number("peak_rss_mb"),
        cpu_s=reader.number("cpu_s"),
    )


class _Reader:
    """Typed access to one JSON object, every fault a :class:`ManifestError` naming the field."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def _fail(self, key: str, want: str) -> ManifestError:
        return ManifestError(f"{self.where}: {key!r} is {self.data.get(key)!r}, not {want}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self._fail(key, "a string or null")
        return value

    def whole(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key, default)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self._fail(key, "a whole number or null")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise self._fail(key, "a number or null")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return value

    def status(self, key: str, kind: type[RunStatus] | type[StepStatus]) -> Any:
        value = self.data.get(key)
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return kind(value)
        except ValueError:
            raise self._fail(key, f"one of {', '.join(m.value for m in kind)}") from None

    def count(self, key: str, default: int) -> int:
        value = self.whole(key, default)
        return default if value is None else value

    def required_instant(self, key: str) -> datetime:
        value = self.instant(key, required=True)
        if value is None:  # instant(required=True) raises instead; this keeps the type exact
            raise self._fail(key, "an ISO-8601 instant with its UTC offset")
        return value

    def instant(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.data.get(key)
        if value is None and not required:
            return None
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise self._fail(key, "an ISO-8601 instant with its UTC offset")
        return parsed

    def day(self, key: str) -> date | None:
        value = self.data.get(key)
        if value is None:
            return None
        try:
            return date.fromisoformat(value) if isinstance(value, str) else _raise()
        except ValueError:
            raise self._fail(key, "an ISO date (YYYY-MM-DD)") from None


def _raise() -> date:
    raise ValueError("not text")


# Optional fields added to schema 2 later (run: error class and resources; step: resources): written
# only when set, so an older manifest read and written back is unchanged.
_LATER_RUN_FIELDS = frozenset({"error_class"})
_LATER_STEP_FIELDS = frozenset({"peak_rss_mb", "cpu_s"})
# Written into manifest.json but never stored twice: derived from the instants and the steps on reading.
# (A crashed or running run's file carries no resource totals, as before: its steps were not all measured.)
_DERIVED_RUN_FIELDS = ("duration_s", "peak_rss_mb", "cpu_s")


def run_totals(steps: Iterable[StepRecord]) -> tuple[float | None, float | None]:
    """A run's peak memory (its largest step's; steps run one after another) and CPU seconds (summed)."""
    steps = list(steps)
    peaks = [s.peak_rss_mb for s in steps if s.peak_rss_mb is not None]
    cpus = [s.cpu_s for s in steps if s.cpu_s is not None]
    return (max(peaks) if peaks else None), (round(sum(cpus), 3) if cpus else None)


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start is not None and end is not None else None


def _kept(record: Manifest | StepRecord, name: str) -> bool:
    later = _LATER_STEP_FIELDS if isinstance(record, StepRecord) else _LATER_RUN_FIELDS
    return name not in later or getattr(record, name) is not None


def _dump(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value
