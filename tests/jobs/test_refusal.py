"""A start of a busy job is refused before anything expensive: no kernel, no runner, one short store write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from run_holder_support import hold_job

from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import JobBusyError
from shiol_lib.jobs import run as job_run
from shiol_lib.jobs.catalog import PIPELINE
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.liveness import refuse_if_busy
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import open_store
from shiol_lib.store import runs as run_table


def settings_for(home: Path) -> Settings:
    """The settings of a workbench home in ``home`` (its store created)."""
    settings = load_settings({"SHIOL_HOME": str(home)})
    open_store(settings.db_path, settings.snapshot_path)
    return settings


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """A store whose pipeline job is held by a live process; yields the settings and the holder's run id."""
    settings = settings_for(tmp_path)
    with hold_job(tmp_path, PIPELINE.name) as (_, run_id):
        yield settings, run_id


def test_a_busy_job_is_refused_before_a_kernel_starts(held, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, holder_run = held

    class NoKernels:
        def __init__(self) -> None:
            raise AssertionError("a kernel pool was made for a start that is refused")

    monkeypatch.setattr(job_run, "KernelPool", NoKernels)
    with pytest.raises(JobBusyError, match=f"already running \\(run {holder_run}, pid"):
        job_run.run_job(settings, PIPELINE.name, seed=7)
    store = open_store(settings.db_path, settings.snapshot_path)
    rows = {row.run_id: row for row in run_table.list_runs(store, job=PIPELINE.name)}
    refused = [row for row in rows.values() if row.status == RunStatus.REFUSED]
    assert len(rows) == 2 and rows[holder_run].status == RunStatus.RUNNING
    assert len(refused) == 1 and refused[0].seed == 7 and holder_run in (refused[0].error or "")
    assert not Path(refused[0].archive_dir or "").exists()  # a refused start leaves no folder


def test_a_free_job_is_not_touched_by_the_check(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = open_store(settings.db_path, settings.snapshot_path)
    refuse_if_busy(settings, PIPELINE.name, RunContext(), seed=1)  # no error, nothing written
    assert run_table.list_runs(store) == []


def test_the_check_creates_no_store(tmp_path: Path) -> None:
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    refuse_if_busy(settings, PIPELINE.name, RunContext(), seed=1)
    assert not settings.db_path.exists() and not settings.db_path.parent.exists()


def test_a_dead_holder_does_not_refuse(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with hold_job(tmp_path, PIPELINE.name):
        pass  # killed on leaving: its run stays `running`, for recovery to close
    refuse_if_busy(settings, PIPELINE.name, RunContext(), seed=1)
    store = open_store(settings.db_path, settings.snapshot_path)
    assert [row.status for row in run_table.list_runs(store)] == [RunStatus.RUNNING]
