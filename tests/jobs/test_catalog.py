"""The job catalog is the one place a job is defined: everything else reads it, and jobs can be added at runtime."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiol_lib.domain.slots import ScheduleError, parse_cron
from shiol_lib.errors import ConfigError
from shiol_lib.jobs import catalog
from shiol_lib.jobs.catalog import (
    EVALUATE,
    JOBS,
    SCHEDULED_JOBS,
    JobDefinition,
    ScheduleKind,
    performance_jobs,
    register_job,
    scheduled_job_names,
    scheduled_jobs,
)
from shiol_lib.scheduling.plans import job_schedules
from shiol_lib.settings import load_settings

PACKAGE = Path(catalog.__file__).resolve().parents[1]
BUILT_IN = frozenset({"pipeline", "data_update", "evaluation", "research_backtest", "research_power"})
# Literals that spell a job's name but name something else: the step function `research_backtest`
# (listed in `__all__` and imported lazily by name).
NOT_JOB_NAMES = {("steps/__init__.py", "research_backtest")}


def job_name_literals(root: Path = PACKAGE) -> list[str]:
    """``path:line 'name'`` of every string literal equal to a built-in job's name outside the catalog."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "jobs/catalog.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value in BUILT_IN and (rel, node.value) not in NOT_JOB_NAMES:
                found.append(f"{rel}:{node.lineno} {node.value!r}")
    return found


@pytest.fixture
def analyst_job() -> Iterator[JobDefinition]:
    """An analyst's scheduled job, registered for the test and removed after it."""
    job = JobDefinition(
        "nightly_evaluation",
        (EVALUATE,),
        "evaluate every night",
        ScheduleKind.CRON,
        task_name="nightly_evaluation",
        cron="30 2 * * *",
        builtin=False,
    )
    register_job(job)
    yield job
    JOBS.pop(job.name, None)


def test_no_module_outside_the_catalog_spells_a_built_in_job_name() -> None:
    assert job_name_literals() == []


def test_the_literal_scan_finds_a_job_name(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "catalog.py").write_text('NAME = "pipeline"\n')
    (tmp_path / "dashboard.py").write_text('def is_it(job):\n    return job == "pipeline"\n')
    assert job_name_literals(tmp_path) == ["dashboard.py:2 'pipeline'"]


def test_the_built_in_scheduled_jobs_keep_their_task_names_and_crons() -> None:
    assert [(j.name, j.task_name, j.cron_source, j.drawing_linked) for j in SCHEDULED_JOBS] == [
        ("pipeline", "post_drawing_pipeline", "SHIOL_PIPELINE_CRON", True),
        ("data_update", "maintenance_data_update", "SHIOL_UPDATE_CRON", False),
        ("evaluation", "prediction_evaluation", "SHIOL_EVALUATION_CRON", False),
    ]
    assert performance_jobs() == {"pipeline"}


def test_the_schedules_read_each_job_cron_from_its_setting() -> None:
    settings = load_settings({"SHIOL_HOME": "/nonexistent", "SHIOL_UPDATE_CRON": "0 7 * * *"})
    schedules = job_schedules(settings)
    assert list(schedules) == ["pipeline", "data_update", "evaluation"]
    assert schedules["pipeline"].drawing_linked and not schedules["data_update"].drawing_linked
    assert schedules["data_update"].spec == parse_cron("0 7 * * *") != job_schedules()["data_update"].spec
    assert schedules["pipeline"].spec == parse_cron(settings.pipeline_cron)


def test_a_bad_cron_names_its_variable() -> None:
    settings = load_settings({"SHIOL_HOME": "/nonexistent", "SHIOL_EVALUATION_CRON": "61 * * * *"})
    with pytest.raises(ScheduleError, match="^SHIOL_EVALUATION_CRON: "):
        job_schedules(settings)


def test_a_registered_job_is_scheduled_planned_and_given_a_task(analyst_job: JobDefinition) -> None:
    assert scheduled_jobs()[-1] is analyst_job
    assert scheduled_job_names()[-1] == "nightly_evaluation"
    assert "nightly_evaluation" in job_schedules()
    assert analyst_job.cron_expression(load_settings({"SHIOL_HOME": "/x"})) == "30 2 * * *"
    assert [j.name for j in SCHEDULED_JOBS] == ["pipeline", "data_update", "evaluation"]  # the built-ins only


def test_a_job_name_or_task_name_is_taken_once(analyst_job: JobDefinition) -> None:
    with pytest.raises(ConfigError, match="already defined"):
        register_job(analyst_job)
    twin = JobDefinition(
        "other", (EVALUATE,), schedule=ScheduleKind.CRON, task_name="prediction_evaluation", cron="0 1 * * *"
    )
    with pytest.raises(ConfigError, match="task name 'prediction_evaluation' is already taken"):
        register_job(twin)
    assert "other" not in JOBS


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"task_name": "t"}, "exactly one of cron_setting and cron"),
        (
            {"task_name": "t", "cron": "0 1 * * *", "cron_setting": "update_cron"},
            "exactly one of cron_setting and cron",
        ),
        ({"cron": "0 1 * * *"}, "give it a task_name"),
    ],
)
def test_a_scheduled_job_needs_one_cron_and_a_task(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        JobDefinition("x", (EVALUATE,), schedule=ScheduleKind.CRON, **fields)


def test_a_manual_job_has_no_cron() -> None:
    with pytest.raises(ConfigError, match="runs only by hand"):
        JOBS["research_power"].cron_expression()


def test_the_scheduler_app_has_one_task_per_scheduled_job() -> None:
    from shiol_lib.scheduling.app import app

    # the catalog's jobs, and the task giving each planned analyst job its own (tests/scheduling/test_job_tasks.py)
    assert sorted(t.name for t in app.session.tasks) == sorted(
        [*(j.task_name for j in SCHEDULED_JOBS), "sync_job_tasks"]
    )


def test_the_command_line_offers_the_catalog_jobs() -> None:
    from shiol_lib.cli.main import cli

    missed_job = next(p for p in cli.commands["runs"].commands["missed"].params if p.name == "job")
    assert list(missed_job.type.choices) == ["pipeline", "data_update", "evaluation"]


def test_shiol_run_takes_every_job_in_force_and_names_them_for_an_unknown_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shiol_lib.cli.main import cli

    result = CliRunner().invoke(cli, ["run", "nosuch"], env={"SHIOL_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert "unknown job 'nosuch'" in result.output and "research_power" in result.output
    assert "Traceback" not in result.output
