"""Job definitions: every bad input is a problem naming file, job, field and reason; the built-in file
agrees with the catalog; the precedence of the jobs file, SHIOL_*_CRON and the built-in file."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shiol_lib.domain.draw_calendar import DRAW_TIME
from shiol_lib.domain.slots import ScheduleError, parse_cron
from shiol_lib.errors import JobsFileError
from shiol_lib.jobs.catalog import JOBS, ScheduleKind
from shiol_lib.jobs.definitions import (
    BUILTIN_FILE,
    CatchUp,
    EnvironmentPolicy,
    StoreAccess,
    builtin_jobs,
    cron_problem,
    effective_jobs,
    parse_duration,
)
from shiol_lib.settings import default, load_settings

TEST_NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
GOOD = 'name = "adder"\nnotebooks = "adds_numbers.ipynb"\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for name in ("adds_numbers.ipynb", "no_parameters.ipynb", "required_parameter.ipynb"):
        shutil.copy(TEST_NOTEBOOKS / name, tmp_path / name)
    return tmp_path


def settings_for(home: Path, **env: str):
    return load_settings({"SHIOL_HOME": str(home), **env})


def load(home: Path, text: str, **env: str):
    (home / "jobs.toml").write_text(text, encoding="utf-8")
    return effective_jobs(settings_for(home, **env))


def problems_of(home: Path, text: str) -> list:
    with pytest.raises(JobsFileError) as caught:
        load(home, text)
    assert all(p.file == str(home / "jobs.toml") for p in caught.value.problems)
    return caught.value.problems


BAD_INPUTS = [
    ("malformed", "[[job]\nname = 'x'\n", None, None, "not valid TOML"),
    ("unknown field", f"[[job]]\n{GOOD}colour = 'red'\n", "adder", "colour", "unknown field"),
    (
        "unknown schedule field",
        f"[[job]]\n{GOOD}schedule = {{ cron = '0 7 * * 1', tz = 'UTC' }}\n",
        "adder",
        "schedule.tz",
        "unknown field",
    ),
    (
        "cron never fires",
        f"[[job]]\n{GOOD}schedule = {{ cron = '0 0 31 2 *' }}\n",
        "adder",
        "schedule.cron",
        "never fires",
    ),
    (
        "cron out of range",
        f"[[job]]\n{GOOD}schedule = {{ cron = '61 * * * *' }}\n",
        "adder",
        "schedule.cron",
        "invalid",
    ),
    (
        "cron 6 fields",
        f"[[job]]\n{GOOD}schedule = {{ cron = '0 0 7 * * 1' }}\n",
        "adder",
        "schedule.cron",
        "expected 5",
    ),
    ("cron L", f"[[job]]\n{GOOD}schedule = {{ cron = '0 7 L * *' }}\n", "adder", "schedule.cron", "non-standard"),
    (
        "unknown timezone",
        f"[[job]]\n{GOOD}schedule = {{ cron = '0 7 * * 1', timezone = 'Mars/Base' }}\n",
        "adder",
        "schedule.timezone",
        "unknown timezone 'Mars/Base'",
    ),
    ("schedule without cron", f"[[job]]\n{GOOD}schedule = {{ timezone = 'UTC' }}\n", "adder", "schedule", "needs cron"),
    (
        "bad delay",
        f"[[job]]\n{GOOD}schedule = {{ after_drawing = 'soon' }}\n",
        "adder",
        "schedule.after_drawing",
        "not a duration",
    ),
    (
        "missing notebook",
        "[[job]]\nname = 'lost'\nnotebooks = 'nowhere.ipynb'\n",
        "lost",
        "notebooks",
        "'nowhere.ipynb' not found",
    ),
    ("not a notebook", "[[job]]\nname = 'txt'\nnotebooks = 'jobs.toml'\n", "txt", "notebooks", "not a notebook"),
    ("no notebooks", "[[job]]\nname = 'empty'\nnotebooks = []\n", "empty", "notebooks", "non-empty list"),
    (
        "no parameters cell",
        "[[job]]\nname = 'plain'\nnotebooks = 'no_parameters.ipynb'\n",
        "plain",
        "notebooks",
        "0 cells tagged 'parameters'",
    ),
    (
        "wrong parameter type",
        f"[[job]]\n{GOOD}parameters = {{ a = 'one' }}\n",
        "adder",
        "parameters",
        "parameter 'a' wants int, got str",
    ),
    ("unknown parameter", f"[[job]]\n{GOOD}parameters = {{ c = 1 }}\n", "adder", "parameters.c", "unknown"),
    (
        "handed parameter",
        f"[[job]]\n{GOOD}parameters = {{ run_id = 'x' }}\n",
        "adder",
        "parameters.run_id",
        "handed to every run",
    ),
    (
        "date parameter",
        f"[[job]]\n{GOOD}parameters = {{ label = 2024-07-01 }}\n",
        "adder",
        "parameters.label",
        "quote it",
    ),
    (
        "missing required parameter",
        "[[job]]\nname = 'req'\nnotebooks = 'required_parameter.ipynb'\n",
        "req",
        "parameters",
        "missing required parameter 'target'",
    ),
    ("duplicate name", f"[[job]]\n{GOOD}\n[[job]]\n{GOOD}", "adder", "name", "duplicate name"),
    ("name not a slug", "[[job]]\nname = 'My Job'\nnotebooks = 'adds_numbers.ipynb'\n", "My Job", "name", "not a slug"),
    ("name missing", "[[job]]\nnotebooks = 'adds_numbers.ipynb'\n", "#1", "name", "missing"),
    (
        "secret not a variable name",
        f"[[job]]\n{GOOD}secrets = ['API-KEY']\n",
        "adder",
        "secrets",
        "not an environment variable name",
    ),
    ("catch_up value", f"[[job]]\n{GOOD}catch_up = 'all'\n", "adder", "catch_up", "not one of"),
    ("max_catch_up without each", f"[[job]]\n{GOOD}max_catch_up = 3\n", "adder", "max_catch_up", "only with"),
    ("store value", f"[[job]]\n{GOOD}store = 'rw'\n", "adder", "store", "not one of"),
    ("environment value", f"[[job]]\n{GOOD}environment = 'lax'\n", "adder", "environment", "not one of"),
    ("timeout zero", f"[[job]]\n{GOOD}timeout = 0\n", "adder", "timeout", "at least 1 s"),
    ("retries not a list", f"[[job]]\n{GOOD}retries = 3\n", "adder", "retries", "wait before each retry"),
    ("keep_days zero", f"[[job]]\n{GOOD}keep_days = 0\n", "adder", "keep_days", "whole number >= 1"),
    ("paused text", f"[[job]]\n{GOOD}paused = 'yes'\n", "adder", "paused", "true or false"),
    ("top-level key", f"owner = 'me'\n[[job]]\n{GOOD}", None, "owner", "[[job]] table"),
    (
        "built-in steps",
        "[[job]]\nname = 'pipeline'\nnotebooks = 'adds_numbers.ipynb'\n",
        "pipeline",
        "notebooks",
        "cannot be changed",
    ),
    (
        "built-in kind",
        "[[job]]\nname = 'evaluation'\nschedule = { after_drawing = '1h' }\n",
        "evaluation",
        "schedule",
        "keeps that kind",
    ),
    (
        "a manual built-in job's steps",
        "[[job]]\nname = 'research_power'\nnotebooks = 'adds_numbers.ipynb'\n",
        "research_power",
        "notebooks",
        "cannot be changed",
    ),
]


@pytest.mark.parametrize(("case", "text", "job", "field", "reason"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_every_bad_input_names_file_job_field_and_reason(home, case, text, job, field, reason):
    problems = problems_of(home, text)
    assert any(p.job == job and p.field == field and reason in p.reason for p in problems), problems
    line = str(next(p for p in problems if p.field == field))
    assert line.startswith(f"{home / 'jobs.toml'}: ") and reason in line


def test_all_problems_of_a_file_are_reported_together(home):
    text = (
        "[[job]]\nname = 'one'\nnotebooks = 'nowhere.ipynb'\nschedule = { cron = '0 25 * * *' }\n\n"
        "[[job]]\nname = 'Two'\nnotebooks = 'adds_numbers.ipynb'\n"
    )
    fields = {(p.job, p.field) for p in problems_of(home, text)}
    assert fields == {("one", "notebooks"), ("one", "schedule.cron"), ("Two", "name")}


def test_a_full_definition_is_parsed_into_its_fields(home):
    (home / "sub").mkdir()
    shutil.copy(TEST_NOTEBOOKS / "adds_numbers.ipynb", home / "sub" / "second.ipynb")
    jobs = load(
        home,
        """
[[job]]
name = "adder"
description = "adds"
notebooks = ["adds_numbers.ipynb", "sub/second.ipynb"]
parameters = { a = 3, b = 1, label = "total" }
schedule = { cron = "0 7 * * 1", timezone = "Europe/Paris" }
catch_up = "each"
max_catch_up = 4
grace = "15m"
timeout = "1h30m"
retries = ["1m", 120, "4m"]
alert_after_failures = 2
store = "write"
secrets = ["MY_API_KEY"]
environment = "strict"
keep_days = 30
paused = true
""",
    )
    spec = jobs["adder"]
    assert [p.name for p in spec.notebooks] == ["adds_numbers.ipynb", "second.ipynb"]
    assert spec.parameters == {"a": 3, "b": 1, "label": "total"}
    assert (spec.schedule.kind, spec.schedule.cron, spec.schedule.timezone) == (
        ScheduleKind.CRON,
        "0 7 * * 1",
        "Europe/Paris",
    )
    assert (spec.catch_up, spec.max_catch_up, spec.grace_s, spec.timeout_s) == (CatchUp.EACH, 4, 900.0, 5400.0)
    assert spec.retry_backoff_s == (60.0, 120.0, 240.0)
    assert (spec.alert_after_failures, spec.store, spec.environment) == (2, StoreAccess.WRITE, EnvironmentPolicy.STRICT)
    assert (spec.secrets, spec.keep_days, spec.paused, spec.builtin) == (("MY_API_KEY",), 30, True, False)
    assert spec.source == str(home / "jobs.toml")


def test_defaults_of_a_minimal_job_and_a_missing_file(home):
    spec = load(home, f"[[job]]\n{GOOD}")["adder"]
    assert spec.schedule.kind == ScheduleKind.MANUAL and spec.schedule.timezone == "America/New_York"
    assert (spec.catch_up, spec.store, spec.environment, spec.paused) == (
        CatchUp.LATEST,
        StoreAccess.READ,
        EnvironmentPolicy.WARN,
        False,
    )
    assert spec.timeout_s is None and spec.retry_backoff_s is None  # the settings' values
    assert set(effective_jobs(settings_for(home / "elsewhere"))) == set(JOBS)


def test_notebooks_resolve_from_the_notebooks_folder_first(home):
    spec = load(
        home,
        "[[job]]\nname = 'freq'\nnotebooks = 'exploratory/1.0-shw-draw-frequencies.ipynb'\n"
        "schedule = { after_drawing = '2h' }\nparameters = { recent = 30 }\n",
    )["freq"]
    assert spec.notebooks[0].parent.name == "exploratory" and spec.notebooks[0].is_file()
    assert (spec.schedule.kind, spec.schedule.delay_s, spec.schedule.cron) == (ScheduleKind.AFTER_DRAWING, 7200.0, None)


def test_builtin_file_agrees_with_the_catalog():
    specs = builtin_jobs(load_settings({"SHIOL_HOME": "/nonexistent"}))
    assert tuple(specs) == tuple(JOBS)
    text = BUILTIN_FILE.read_text(encoding="utf-8")
    for name, spec in specs.items():
        job = JOBS[name]
        assert [p.name for p in spec.notebooks] == [step.notebook for step in job.steps]
        assert spec.steps == job.steps
        assert spec.schedule.kind == job.schedule and spec.description == job.description
        assert spec.builtin and spec.store == StoreAccess.WRITE
        if job.cron_setting is None:
            assert spec.schedule.cron is None and not spec.planned
            continue
        assert f'cron = "{default(job.cron_setting)}"' in text  # the file's cron is the setting's default
        assert spec.schedule.cron == default(job.cron_setting) and spec.planned


def test_pipeline_delay_is_its_cron_after_the_drawing():
    pipeline = builtin_jobs(load_settings({"SHIOL_HOME": "/nonexistent"}))["pipeline"]
    cron = parse_cron(pipeline.schedule.cron)
    after = (datetime.combine(datetime(2024, 7, 1), DRAW_TIME) + timedelta(seconds=pipeline.schedule.delay_s)).time()
    assert cron.wall_times() == (after,) and cron.days_of_week == (1, 3, 6)  # Mon, Wed, Sat: the draw days


def test_precedence_jobs_file_over_env_over_builtin(home):
    builtin = effective_jobs(settings_for(home))["data_update"]
    assert builtin.schedule.cron == "0 6 * * 0,2,4,5"
    from_env = effective_jobs(settings_for(home, SHIOL_UPDATE_CRON="0 5 * * *"))["data_update"]
    assert from_env.schedule.cron == "0 5 * * *"
    from_file = load(
        home,
        "[[job]]\nname = 'data_update'\nschedule = { cron = '0 4 * * *' }\ntimeout = 60\nretries = []\n"
        "keep_days = 30\npaused = true\n",
        SHIOL_UPDATE_CRON="0 5 * * *",
    )["data_update"]
    assert (from_file.schedule.cron, from_file.timeout_s, from_file.retry_backoff_s, from_file.paused) == (
        "0 4 * * *",
        60.0,
        (),
        True,
    )
    assert from_file.keep_days == 30 and builtin.keep_days is None
    assert from_file.notebooks == builtin.notebooks and from_file.builtin


def test_a_bad_env_cron_names_its_variable(home):
    with pytest.raises(JobsFileError) as caught:
        effective_jobs(settings_for(home, SHIOL_EVALUATION_CRON="0 0 30 2 *"))
    (problem,) = caught.value.problems
    assert (problem.file, problem.job, problem.field) == ("SHIOL_EVALUATION_CRON", "evaluation", "schedule.cron")


@pytest.mark.parametrize(
    "expr",
    [
        "0 7 * * 1",
        "*/15 * * * *",
        "0 0 29 2 *",
        "0 0 31 2 1",
        "0 0 31 2 *",
        "0 7 * * 8",
        "60 * * * *",
        "0 7 L * *",
        "@daily",
        "0 7 * *",
        "0 9 * jan mon",
    ],
)
def test_cron_check_agrees_with_the_scheduler(expr):
    try:
        parse_cron(expr)
        accepted = True
    except ScheduleError:
        accepted = False
    assert (cron_problem(expr) is None) == accepted


@pytest.mark.parametrize(
    ("text", "seconds"), [(90, 90.0), (1.5, 1.5), ("90s", 90.0), ("30m", 1800.0), ("1h30m", 5400.0), ("2d", 172800.0)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [-1, True, "soon", "5", "1x", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_the_builtin_file_ships_as_package_data():
    import fnmatch
    import tomllib

    config = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["shiol_lib"]
    relative = BUILTIN_FILE.relative_to(Path(__file__).parents[2] / "shiol_lib").as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), patterns
    assert any(d.startswith("tomlkit") for d in config["project"]["dependencies"])


def test_the_readme_example_is_a_valid_jobs_file(home):
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Analyst jobs", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = load(home, example)["weekly-frequencies"]
    assert spec.parameters == {"recent": 30} and spec.schedule.cron == "0 7 * * 1"
