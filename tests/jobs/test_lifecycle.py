"""The one run lifecycle: each transition writes the manifest, the store rows and the ledger entry once."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.manifest import StepRecord
from shiol_lib.archive.verify import verify_ledger
from shiol_lib.domain.runs import ErrorClass, RunStatus, StepStatus, Trigger
from shiol_lib.jobs.catalog import Step
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.jobs.recovery import close_dead_runs
from shiol_lib.jobs.run import INJECTED_PARAMETERS, run_job
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import Store, open_store
from shiol_lib.store import jobs as job_table
from shiol_lib.store import runs as run_table

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
ADDS = Step("adds_numbers", "adds_numbers.ipynb")
WRITES = {  # every function that writes one of a run's records
    "manifest": (archive, "write_manifest"),
    "ledger": (ledger, "append_entry"),
    "run row opened": (job_table, "start_run_exclusive"),
    "run row": (run_table, "update_run"),
    "run row closed": (run_table, "finish_run"),
    "run row crashed": (job_table, "mark_crashed"),
    "step row": (run_table, "upsert_step"),
    "job lock released": (job_table, "release_job"),
}


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the calls of every record writer (each still writes)."""
    counts: Counter[str] = Counter()

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)

        return wrapper

    for name, (module, attribute) in WRITES.items():
        monkeypatch.setattr(module, attribute, counting(name, getattr(module, attribute)))
    return counts


def _settings(tmp_path: Path) -> Settings:
    return load_settings({"SHIOL_HOME": str(tmp_path / "home"), "SHIOL_NOTEBOOKS_DIR": str(NOTEBOOKS)})


def _open(settings: Settings, store: Store, context: RunContext | None = None) -> RunLifecycle:
    return RunLifecycle.open(
        settings,
        store,
        "step",
        (ADDS, Step("second", "broken.ipynb")),
        context or RunContext(),
        seed=7,
        code={},
        environment={},
    )


def _snapshot_steps(settings: Settings, run_id: str) -> list[str]:
    with duckdb.connect(str(settings.snapshot_path), read_only=True) as conn:
        rows = conn.execute("SELECT status FROM run_steps WHERE run_id = ? ORDER BY position", [run_id]).fetchall()
    return [status for (status,) in rows]


def test_each_transition_writes_each_record_once(tmp_path: Path, writes: Counter[str]) -> None:
    settings = _settings(tmp_path)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    run = _open(settings, store, RunContext(trigger=Trigger.RETRY, attempt=2))
    assert writes == Counter({"run row opened": 1, "manifest": 1})

    writes.clear()
    started = datetime.now(UTC)
    run.start_step(1, started_at=started)
    assert writes == Counter({"manifest": 1, "step row": 1, "run row": 1})
    assert not store.stale_marker.exists()  # a step's start is not news: a read job's kernel finds no stale mark
    assert _snapshot_steps(settings, run.run_id) == []  # ... and it reaches the snapshot at the step's end

    writes.clear()
    run.end_step(
        1,
        StepRecord(
            ADDS.name, ADDS.notebook, StepStatus.SUCCESS, started_at=started, finished_at=started + timedelta(seconds=2)
        ),
    )
    assert writes == Counter({"manifest": 1, "step row": 1, "run row": 1})
    assert not store.stale_marker.exists() and _snapshot_steps(settings, run.run_id) == ["success"]

    writes.clear()
    run.end_open_steps(StepStatus.FAILED)  # the second step never started: one skip, written once
    assert writes == Counter({"manifest": 1, "step row": 1, "run row": 1})

    writes.clear()
    outcome = run.close(RunStatus.SUCCESS, error=None, error_class=None, results=[])
    assert writes == Counter({"manifest": 1, "ledger": 1, "run row closed": 1, "job lock released": 1})
    assert [s.status for s in outcome.manifest.steps] == [StepStatus.SUCCESS, StepStatus.SKIPPED]
    row = run_table.get_run(store, run.run_id)
    assert row is not None and row.status == "success" and row.trigger == "retry" and row.attempt == 2
    assert archive.read_manifest(run.directory).to_json() == outcome.manifest.to_json()
    assert verify_ledger(settings.runs_dir) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_closing_a_dead_run_writes_each_record_once(tmp_path: Path, writes: Counter[str]) -> None:
    settings = _settings(tmp_path)
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    run = _open(settings, store)
    run.start_step(1, started_at=datetime.now(UTC))
    run_table.update_run(store, run.run_id, pid=_dead_pid(), host=socket.gethostname())  # its process died

    writes.clear()
    closed = close_dead_runs(settings, store)
    assert [row.run_id for row in closed] == [run.run_id]
    # the running step becomes crashed and the pending one skipped: one row each; everything else once
    assert writes == Counter({"manifest": 1, "ledger": 1, "run row crashed": 1, "step row": 2})
    manifest = archive.read_manifest(run.directory)
    assert manifest.status == RunStatus.CRASHED
    assert [(s.status, s.error_class) for s in manifest.steps] == [
        (StepStatus.CRASHED, ErrorClass.CRASHED),
        (StepStatus.SKIPPED, None),
    ]
    assert (run.directory / manifest.steps[0].html).exists()  # the step that never saved is still reported
    assert verify_ledger(settings.runs_dir) == []


def test_a_run_context_refuses_what_no_run_can_be() -> None:
    assert RunContext(trigger="missed-draw").trigger is Trigger.MISSED_DRAW  # type: ignore[arg-type]
    with pytest.raises(Exception, match="trigger 'scheduled' is not one of"):
        RunContext(trigger="scheduled")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="attempt counts from 1"):
        RunContext(attempt=0)
    with pytest.raises(Exception, match="UTC offset"):
        RunContext(slot=datetime(2024, 7, 1, 23, 29))
    context = RunContext(Trigger.RETRY, datetime(2024, 7, 2, 3, 29, tzinfo=UTC), 2, None, "parent")
    assert RunContext.from_dict(context.to_dict()) == context


@pytest.mark.slow
def test_run_job_writes_through_the_lifecycle_once_per_transition(tmp_path: Path, writes: Counter[str]) -> None:
    settings = _settings(tmp_path)
    outcome = run_job(
        settings, "step", steps=(ADDS,), step_parameters={ADDS.name: {"a": 3, "out_path": str(tmp_path / "sum.txt")}}
    )
    assert outcome.status == RunStatus.SUCCESS, outcome.manifest.error
    # open (row, manifest), the step's start and end (manifest, step row, run row each), close
    assert writes == Counter(
        {
            "run row opened": 1,
            "manifest": 4,
            "step row": 2,
            "run row": 2,
            "ledger": 1,
            "run row closed": 1,
            "job lock released": 1,
        }
    )
    step = outcome.manifest.steps[0]
    assert step.html == "adds_numbers.html" and (outcome.directory / step.html).exists()
    assert outcome.run_id in (outcome.directory / step.html).read_text()  # titled with the run
    assert step.duration_s == round((step.finished_at - step.started_at).total_seconds(), 3)
    assert not set(INJECTED_PARAMETERS) & set(step.parameters or {})  # adds_numbers declares none of them
