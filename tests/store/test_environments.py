"""Environment records in the store: each package list once per hash, drift from the last successful run.

Runs are opened and closed through the real lifecycle (no notebook runs), then compared by ``shiol runs diff``.
"""

from __future__ import annotations

import json
import logging
import os

import pytest
from click.testing import CliRunner

from shiol_lib.archive import folders as archive
from shiol_lib.cli.main import cli
from shiol_lib.domain.environments import EnvironmentRecord
from shiol_lib.domain.runs import RunStatus
from shiol_lib.execution.environment import capture
from shiol_lib.jobs.catalog import Step
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import Store, open_store
from shiol_lib.store import runs as run_table

JOB = "weekly_report"
OLD = ("numpy==1.26.4", "pandas==2.2.2", "six==1.16.0")
NEW = ("numpy==2.0.0", "pandas==2.2.2", "rich==13.7.1")


def _record(packages: tuple[str, ...]) -> EnvironmentRecord:
    return capture(None, os.environ, packages=packages)


def _run(settings: Settings, store: Store, record: EnvironmentRecord, status: RunStatus) -> RunLifecycle:
    run = RunLifecycle.open(
        settings,
        store,
        JOB,
        (Step("report", "adds_numbers.ipynb"),),
        RunContext(),
        seed=1,
        code={},
        environment={"platform": "test"},
        environment_record=record,
    )
    run.end_open_steps(run.manifest.steps[0].status)  # nothing ran: the step is skipped
    run.close(status, error=None, error_class=None, results=[])
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Store, list[RunLifecycle]]:
    """Two successful runs on the old packages, then a failed one on the new (shared: each run costs seconds)."""
    settings = load_settings({"SHIOL_HOME": str(tmp_path_factory.mktemp("environments") / "home")})
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5)
    assert run_table.drift(store, JOB, _record(NEW)).previous_sha is None  # no successful run yet
    made = [
        _run(settings, store, _record(OLD), RunStatus.SUCCESS),
        _run(settings, store, _record(OLD), RunStatus.SUCCESS),
        _run(settings, store, _record(NEW), RunStatus.FAILED),
    ]
    return settings, store, made


def test_each_package_list_is_stored_once_and_each_run_names_its_hash(runs):
    settings, store, (first, second, third) = runs
    old, new = _record(OLD), _record(NEW)
    with store.connect() as conn:
        stored = conn.execute("SELECT sha256, packages FROM environments ORDER BY first_seen").fetchall()
    assert [(sha, tuple(json.loads(text))) for sha, text in stored] == [(old.sha256, OLD), (new.sha256, NEW)]
    hashes = [run_table.run_environment(store, r.run_id) for r in (first, second, third)]
    assert hashes == [old.sha256, old.sha256, new.sha256]
    manifest = archive.read_manifest(third.directory).environment
    assert manifest["platform"] == "test" and manifest["packages_sha256"] == new.sha256  # earlier keys kept
    assert manifest["kernel"]["name"] == "python3" and "packages" not in manifest
    assert manifest["drift"] == {
        "previous_sha": old.sha256,
        "added": ["rich==13.7.1"],
        "removed": ["six==1.16.0"],
        "changed": [["numpy", "1.26.4", "2.0.0"]],
    }
    assert "drift" not in archive.read_manifest(second.directory).environment


def test_drift_is_measured_against_the_last_successful_run_and_strict_names_the_packages(runs, caplog):
    _, store, _ = runs
    old, new = _record(OLD), _record(NEW)
    reason = run_table.check_environment(store, JOB, new, strict=True)  # the failed run on NEW is no base line
    assert reason is not None
    assert f"job '{JOB}'" in reason and old.sha256[:12] in reason
    assert "numpy 1.26.4 -> 2.0.0, added rich==13.7.1, removed six==1.16.0" in reason
    assert "strict" in reason and 'environment = "warn"' in reason
    with caplog.at_level(logging.WARNING, logger="shiol_lib.store.runs"):
        assert run_table.check_environment(store, JOB, new, strict=False) is None
    assert "numpy 1.26.4 -> 2.0.0" in caplog.text
    assert run_table.check_environment(store, JOB, old, strict=True) is None  # unchanged: runs
    assert run_table.check_environment(store, "other_job", new, strict=True) is None  # no successful run yet


def test_runs_diff_names_the_packages_that_differ(runs):
    settings, _, (first, _, third) = runs
    env = {"SHIOL_HOME": str(settings.home)}
    shown = CliRunner().invoke(cli, ["runs", "diff", first.run_id, third.run_id], env=env)
    assert shown.exit_code == 0, shown.output
    assert "packages.numpy: '1.26.4' -> '2.0.0'" in shown.output
    assert "packages.rich: None -> '13.7.1'" in shown.output and "packages.six: '1.16.0' -> None" in shown.output
    assert "pandas" not in shown.output
    as_json = CliRunner().invoke(cli, ["runs", "diff", first.run_id, third.run_id, "--json"], env=env)
    fields = {d["field"]: [d["first"], d["second"]] for d in json.loads(as_json.output)["differences"]}
    assert fields["packages.numpy"] == ["1.26.4", "2.0.0"] and "environment.packages_sha256" in fields
