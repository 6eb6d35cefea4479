"""An analyst job's environment policy, through the real job walk (issue 19): ``strict`` refuses a run whose
package set differs from the job's last successful run, naming the package; ``warn`` runs and records the
drift in the manifest. The package list is injected (``capture``'s ``packages``); the runs are real."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from shiol_lib.domain.runs import ErrorClass, RunStatus
from shiol_lib.execution.environment import capture
from shiol_lib.jobs import run as job_run
from shiol_lib.settings import load_settings

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "writes_slot.ipynb"
JOB = "env-guarded"


def jobs_file(policy: str) -> str:
    return f'[[job]]\nname = "{JOB}"\nnotebooks = "{NOTEBOOK}"\nenvironment = "{policy}"\n'


def with_packages(monkeypatch: pytest.MonkeyPatch, packages: list[str]) -> None:
    """The next runs record ``packages`` as their kernel's installed distributions."""
    monkeypatch.setattr(job_run, "capture", functools.partial(capture, packages=packages))


@pytest.mark.slow
def test_strict_refuses_a_changed_package_set_naming_it_and_warn_runs_recording_the_drift(tmp_path, monkeypatch):
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    settings.jobs_path.write_text(jobs_file("strict"), encoding="utf-8")
    installed = list(capture(None, os.environ).packages)
    numpy = next(p for p in installed if p.startswith("numpy=="))
    changed = [p if p != numpy else "numpy==0.0.1" for p in installed]

    with_packages(monkeypatch, installed)
    first = job_run.run_job(settings, JOB)
    assert first.manifest.status == RunStatus.SUCCESS, first.manifest.error

    with_packages(monkeypatch, changed)
    refused = job_run.run_job(settings, JOB)
    manifest = refused.manifest
    assert manifest.status == RunStatus.FAILED and manifest.error_class == ErrorClass.ENVIRONMENT
    assert str(manifest.error).startswith("refused: ")
    assert f"{numpy.replace('==', ' ')} -> 0.0.1" in str(manifest.error) and "strict" in str(manifest.error)
    assert [s.status for s in manifest.steps] == ["skipped"]  # no notebook ran

    settings.jobs_path.write_text(jobs_file("warn"), encoding="utf-8")
    warned = job_run.run_job(settings, JOB)
    assert warned.manifest.status == RunStatus.SUCCESS, warned.manifest.error
    drift = warned.manifest.environment["drift"]
    assert drift["previous_sha"] == first.manifest.environment["packages_sha256"]
    assert ["numpy", numpy.split("==")[1], "0.0.1"] in [list(c) for c in drift["changed"]]
