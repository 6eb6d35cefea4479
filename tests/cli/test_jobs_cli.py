"""``shiol jobs``: list, show, check, add, remove, pause, resume; problems one line each, exit 2, no traceback."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from shiol_lib.cli.main import cli
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store
from shiol_lib.store.runs import RunRow, insert_run

TEST_NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
FREQUENCIES = "exploratory/1.0-shw-draw-frequencies.ipynb"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("SHIOL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    return tmp_path


def shiol(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="shiol")


def test_list_shows_the_builtin_jobs_with_next_runs_in_et_and_utc(home):
    result = shiol("jobs", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["pipeline", "data_update", "evaluation", "research_backtest", "research_power"]
    assert [r["next_run"] is None for r in rows] == [False, False, False, True, True]  # the research runs by hand
    pipeline = rows[0]
    assert pipeline["next_run"].endswith(("-04:00", "-05:00")) and pipeline["next_run_utc"].endswith("+00:00")
    assert datetime.fromisoformat(pipeline["next_run"]) == datetime.fromisoformat(pipeline["next_run_utc"])
    assert datetime.fromisoformat(pipeline["next_run"]).strftime("%H:%M") == "23:29"
    assert pipeline["last_result"] is None and pipeline["paused"] is False
    assert not (home / "var").exists()  # listing never creates a store


def test_add_an_exploratory_notebook_weekly_then_list_show_pause_resume_remove(home):
    added = shiol(
        "jobs",
        "add",
        FREQUENCIES,
        "--name",
        "weekly-freq",
        "--cron",
        "0 7 * * 1",
        "-p",
        "recent",
        "30",
        "--secret",
        "MY_TOKEN",
        "--description",
        "draw frequencies every Monday",
    )
    assert added.exit_code == 0, added.output
    assert "added job weekly-freq" in added.stdout and "next run" in added.stdout
    text = (home / "jobs.toml").read_text(encoding="utf-8")
    assert f'notebooks = "{FREQUENCIES}"' in text and "recent = 30" in text  # typed as the notebook declares
    shown = json.loads(shiol("jobs", "show", "weekly-freq", "--json").stdout)
    assert shown["parameters"] == {"recent": 30} and shown["secrets"] == ["MY_TOKEN"]
    assert datetime.fromisoformat(shown["next_run"]).strftime("%a %H:%M") == "Mon 07:00"
    listed = shiol("jobs", "list").stdout
    assert "weekly-freq: cron 0 7 * * 1 (America/New_York); next run " in listed

    assert shiol("jobs", "pause", "weekly-freq").exit_code == 0
    row = next(r for r in json.loads(shiol("jobs", "list", "--json").stdout) if r["name"] == "weekly-freq")
    assert row["paused"] is True and row["next_run"] is None
    assert shiol("jobs", "resume", "weekly-freq").exit_code == 0
    assert (home / "jobs.toml").read_text(encoding="utf-8") == text
    removed = shiol("jobs", "remove", "weekly-freq")
    assert removed.exit_code == 0 and "removed job weekly-freq" in removed.stdout
    assert "weekly-freq" not in shiol("jobs", "list").stdout


def test_add_refuses_a_bad_definition_one_line_per_problem(home):
    result = shiol(
        "jobs",
        "add",
        FREQUENCIES,
        "--name",
        "Bad Name",
        "--cron",
        "0 0 31 2 *",
        "--timezone",
        "Mars/Base",
        "-p",
        "recent",
        "many",
        "-p",
        "nope",
        "1",
    )
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    jobs_file = str(home / "jobs.toml")
    assert lines == [
        f"error: {jobs_file}: job 'Bad Name': name: 'Bad Name' is not a slug: lowercase letters, digits, '-' and '_', "
        "starting with a letter, at most 63",
    ]
    result = shiol(
        "jobs",
        "add",
        FREQUENCIES,
        "--name",
        "bad",
        "--cron",
        "0 0 31 2 *",
        "--timezone",
        "Mars/Base",
        "-p",
        "recent",
        "many",
        "-p",
        "nope",
        "1",
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    fields = [line.split(": ")[3] for line in result.stderr.splitlines()]
    assert fields == ["schedule.timezone", "schedule.cron", "parameters.nope", "parameters"], result.stderr
    assert all(line.startswith(f"error: {jobs_file}: job 'bad': ") for line in result.stderr.splitlines())
    assert not (home / "jobs.toml").exists()


@pytest.mark.parametrize("args", [["--cron", "0 7 * * 1", "--manual"], [], ["--manual", "--timezone", "UTC"]])
def test_add_needs_exactly_one_schedule(home, args):
    result = shiol("jobs", "add", FREQUENCIES, "--name", "x", *args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_add_after_drawing_and_manual(home):
    assert shiol("jobs", "add", FREQUENCIES, "--name", "after", "--after-drawing", "2h").exit_code == 0
    assert shiol("jobs", "add", FREQUENCIES, "--name", "byhand", "--manual").exit_code == 0
    rows = {r["name"]: r for r in json.loads(shiol("jobs", "list", "--json").stdout)}
    assert rows["after"]["schedule"]["text"] == "120 min after each drawing"
    assert datetime.fromisoformat(rows["after"]["next_run"]).strftime("%H:%M") == "00:59"  # 22:59 + 2 h
    assert rows["byhand"]["next_run"] is None


def test_check_reports_each_problem_and_exits_2(home, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[[job]]\nname = 'a'\nnotebooks = 'missing.ipynb'\ncolour = 1\n\n"
        "[[job]]\nname = 'a'\nnotebooks = 'missing.ipynb'\n",
        encoding="utf-8",
    )
    result = shiol("jobs", "check", str(bad))
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"error: {bad}: job 'a': ") for line in lines)
    assert [line.split(": ")[3] for line in lines] == ["colour", "notebooks", "notebooks", "name"]
    assert "unknown field" in lines[0] and "'missing.ipynb' not found" in lines[1] and "duplicate name" in lines[3]
    bad.write_text("[[job]\n", encoding="utf-8")
    result = shiol("jobs", "check", str(bad))
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {bad}: not valid TOML")


def test_check_accepts_a_good_file_and_the_missing_default(home):
    result = shiol("jobs", "check")
    assert result.exit_code == 0 and "no file: the built-in jobs only" in result.stdout
    (home / "jobs.toml").write_text("[[job]]\nname = 'pipeline'\npaused = true\n", encoding="utf-8")
    result = shiol("jobs", "check")
    assert result.exit_code == 0 and "5 job(s) in force, 1 defined or changed there" in result.stdout
    assert shiol("jobs", "check", str(home / "nowhere.toml")).exit_code == 2


def test_a_broken_jobs_file_makes_list_exit_2_naming_it(home):
    (home / "jobs.toml").write_text("[[job]]\nname = 'x'\nnotebooks = 'gone.ipynb'\n", encoding="utf-8")
    result = shiol("jobs", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {home / 'jobs.toml'}: job 'x': notebooks: 'gone.ipynb' not found")


def test_show_unknown_and_remove_builtin_are_usage_errors(home):
    result = shiol("jobs", "show", "ghost")
    assert result.exit_code == 2 and "unknown job 'ghost'" in result.stderr
    result = shiol("jobs", "remove", "pipeline")
    assert result.exit_code == 2 and "no such job in this file" in result.stderr


def test_list_shows_the_last_result_from_the_store(home):
    settings = load_settings({"SHIOL_HOME": str(home)})
    store = open_store(settings.db_path, settings.snapshot_path)
    started = datetime(2024, 7, 2, 3, 29, tzinfo=UTC)
    insert_run(
        store,
        RunRow(
            "20240702T032900Z-abcdef",
            "evaluation",
            None,
            "manual",
            "success",
            started,
            started,
            None,
            None,
            None,
            1,
            None,
            None,
            None,
            None,
            None,
            None,
        ),
    )
    rows = {r["name"]: r for r in json.loads(shiol("jobs", "list", "--json").stdout)}
    assert rows["evaluation"]["last_result"]["run_id"] == "20240702T032900Z-abcdef"
    assert rows["evaluation"]["last_result"]["status"] == "success"
    assert rows["pipeline"]["last_result"] is None


def test_pausing_a_builtin_job_from_the_cli(home):
    assert shiol("jobs", "pause", "pipeline").exit_code == 0
    assert (home / "jobs.toml").read_text(encoding="utf-8").endswith('[[job]]\nname = "pipeline"\npaused = true\n')
    assert shiol("jobs", "resume", "pipeline").exit_code == 0
    assert "pipeline" not in (home / "jobs.toml").read_text(encoding="utf-8")
