"""Why and for what a run starts: the typed :class:`RunContext` a job run is handed.

The CLI (``shiol run --trigger --slot --draw-date --attempt``), the scheduler (its planner's due run)
and a rerun build one; :func:`~shiol_lib.jobs.run.run_job` records it in the run's store row and
manifest. A :class:`~shiol_lib.jobs.job_process.RunRequest` carries it to the job process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shiol_lib.archive.manifest import Manifest
from shiol_lib.domain.runs import RunStatus, Trigger
from shiol_lib.errors import ConfigError
from shiol_lib.execution.outcome import StepOutcome

DEFAULT_SEED = 20240701  # a run's random seed unless one is given (recorded in its row and manifest)


@dataclass(frozen=True)
class RunContext:
    """Why a run starts (``trigger``), the slot and drawing it belongs to, its attempt and the run it follows.

    ``draw_date`` names the drawing a scheduled pipeline run processes; ``parent_run_id`` the run it
    re-executes (a rerun) or recovers.
    """

    trigger: Trigger = Trigger.MANUAL
    slot: datetime | None = None
    attempt: int = 1
    draw_date: date | None = None
    parent_run_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.trigger, Trigger):  # a plain string from a caller: checked here, once
            object.__setattr__(self, "trigger", parse_trigger(self.trigger))
        if self.attempt < 1:
            raise ConfigError(f"a run's attempt counts from 1, got {self.attempt}")
        if self.slot is not None and self.slot.tzinfo is None:
            raise ConfigError(f"a run's slot needs its UTC offset, got {self.slot.isoformat()}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (instants and dates as ISO-8601)."""
        return {
            "trigger": str(self.trigger),
            "slot": self.slot.isoformat() if self.slot else None,
            "attempt": self.attempt,
            "draw_date": self.draw_date.isoformat() if self.draw_date else None,
            "parent_run_id": self.parent_run_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunContext:
        """Inverse of :meth:`to_dict` (missing keys take their defaults); ``ValueError`` on bad values."""
        return cls(
            trigger=parse_trigger(str(data.get("trigger") or Trigger.MANUAL)),
            slot=datetime.fromisoformat(data["slot"]) if data.get("slot") else None,
            attempt=int(data.get("attempt", 1)),
            draw_date=date.fromisoformat(data["draw_date"]) if data.get("draw_date") else None,
            parent_run_id=str(data["parent_run_id"]) if data.get("parent_run_id") else None,
        )


def parse_trigger(value: str) -> Trigger:
    """``value`` as a :class:`Trigger`; raises :class:`ConfigError` naming the allowed ones."""
    try:
        return Trigger(value)
    except ValueError:
        raise ConfigError(f"trigger {value!r} is not one of {', '.join(t.value for t in Trigger)}") from None


@dataclass
class RunOutcome:
    """What a job run did: its id, final status, folder, manifest and per-step outcomes."""

    run_id: str
    job: str
    status: RunStatus
    directory: Path
    manifest: Manifest
    results: list[StepOutcome] = field(default_factory=list)
