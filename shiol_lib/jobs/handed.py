"""What a run hands its step notebooks: the values every run sets, and the job's own parameters.

A step notebook gets only the values its ``parameters`` cell declares (README "Analyst jobs"):

- ``db_path``: the store for a job that writes it, the reader snapshot for one that only reads (its
  kernel can then never block a writer); ``run_id``; ``job``;
- ``scheduled_at``: the slot, ISO-8601 with its offset (empty for a manual run); ``draw_date``: the
  drawing the run processes (after-drawing jobs; empty otherwise);
- ``seed``, ``offline``, ``history_end`` and ``target_draw_date`` (the pipeline's steps): the last
  two are settled from the store at the first step that declares them.

A rerun hands the same ``scheduled_at`` and ``draw_date`` as the run it re-executes
(:data:`REPLAYED`); the others are set anew (a new run id, the scratch store).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.domain.history import data_hash
from shiol_lib.errors import RunnerError
from shiol_lib.execution.parameters import read_parameters
from shiol_lib.jobs.catalog import Step
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    from shiol_lib.jobs.lifecycle import RunLifecycle

INJECTED_PARAMETERS = (
    "db_path",
    "run_id",
    "job",
    "scheduled_at",
    "draw_date",
    "seed",
    "offline",
    "history_end",
    "target_draw_date",
)
REPLAYED = frozenset({"scheduled_at", "draw_date"})  # a rerun hands the values its run had
_TARGET_PARAMETERS = frozenset({"history_end", "target_draw_date"})


def notebook_path(notebooks_dir: Path, step: Step) -> Path:
    """The step's source notebook (a built-in step's name is relative to the notebooks folder)."""
    return notebooks_dir / step.notebook


def job_parameters(
    values: Mapping[str, Any], notebooks_dir: Path, steps: tuple[Step, ...]
) -> dict[str, dict[str, Any]]:
    """A job's parameters per step: each value goes to every step whose notebook declares its name.

    A name no step declares is refused (:class:`RunnerError` naming it and the declared ones).
    """
    per_step: dict[str, dict[str, Any]] = {}
    declared_anywhere: set[str] = set()
    for step in steps:
        declared = read_parameters(notebook_path(notebooks_dir, step))
        declared_anywhere |= set(declared)
        per_step[step.name] = {name: value for name, value in values.items() if name in declared}
    unknown = sorted(set(values) - declared_anywhere)
    if unknown:
        raise RunnerError(
            f"parameter(s) {', '.join(unknown)}: no notebook of the job declares them "
            f"(declared: {', '.join(sorted(declared_anywhere - set(INJECTED_PARAMETERS))) or 'none'})"
        )
    return per_step


def refuse_foreign_targets(settings: Settings, values: Mapping[str, Any]) -> None:
    """Archived runs are read-only to the step commands, and a step writes only to its run's store.

    A ``run_id`` parameter would make the step write under another run's id (replacing an archived
    run's predictions behind the archive's back); a ``db_path`` would point it at another store.
    """
    if "run_id" in values:
        raise RunnerError(
            f"-p run_id {values['run_id']!r} is refused: a step run records its results under its own new run "
            "id, and archived runs are read-only (use 'shiol rerun RUN_ID' to re-execute one into a new run)"
        )
    if "db_path" in values and Path(str(values["db_path"])).expanduser().resolve() != settings.db_path:
        raise RunnerError(
            f"-p db_path {values['db_path']!r} is refused: the step would write to another store than this "
            f"run's ({settings.db_path}); set SHIOL_DB_PATH (or SHIOL_HOME) instead"
        )


def settle_target(run: RunLifecycle, history_end: date | None, target_draw_date: date | None) -> None:
    """Fix the history cut-off and the target drawing from the store, once (recorded as the step starts)."""
    manifest = run.manifest
    if manifest.history_end is not None:
        return
    frame = run.store.read_draws()
    if frame.empty:
        raise RunnerError("the store holds no draws; run 'shiol update-data' first")
    last = frame["draw_date"].max().date()
    end = history_end or last
    used = frame[frame["draw_date"] <= str(end)]
    manifest.history_end = end
    manifest.target_draw_date = target_draw_date or draw_after(end)
    manifest.input = {
        "draws_sha256": data_hash(used),
        "draw_count": int(len(used)),
        "first_draw": used["draw_date"].min().date().isoformat(),
        "last_draw": end.isoformat(),
    }
    if manifest.draw_date is None:  # a manual run processes the latest drawing it uses
        manifest.draw_date = end


def step_values(
    run: RunLifecycle,
    step: Step,
    *,
    db_path: Path,
    offline: bool,
    targets: tuple[date | None, date | None],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The values handed to ``step``'s notebook: those it declares of :data:`INJECTED_PARAMETERS`, then ``extra``.

    ``targets`` are the history end and target drawing the caller asked for (None: settled from the store).
    """
    declared = read_parameters(notebook_path(run.settings.notebooks_dir, step))
    if _TARGET_PARAMETERS & set(declared):
        settle_target(run, *targets)
    manifest = run.manifest
    handed = {
        "db_path": str(db_path),
        "run_id": run.run_id,
        "job": run.job,
        "scheduled_at": manifest.slot.isoformat() if manifest.slot is not None else "",
        "draw_date": iso(manifest.draw_date),
        "seed": int(manifest.seed or 0),
        "offline": bool(offline),
        "history_end": iso(manifest.history_end),
        "target_draw_date": iso(manifest.target_draw_date),
    }
    values = {name: value for name, value in handed.items() if name in declared}
    values.update(extra)
    return values


def iso(day: date | None) -> str:
    """A date as ISO text, ``""`` for none (a notebook parameter, a report title)."""
    return day.isoformat() if day is not None else ""
