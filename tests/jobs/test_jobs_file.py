"""Edits of jobs.toml keep the analyst's comments and order byte for byte, validate first, write atomically."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shiol_lib.errors import JobsFileError
from shiol_lib.jobs.catalog import JOBS
from shiol_lib.jobs.definitions import effective_jobs
from shiol_lib.jobs.definitions.edits import NEW_FILE_HEADER, add_job, remove_job, set_paused
from shiol_lib.settings import load_settings

TEST_NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
USER_FILE = """\
# My jobs: reviewed every quarter.
# (keep this header)

[[job]]
name = "weekly"   # the Monday report
notebooks = "adds_numbers.ipynb"
schedule = { cron = "0 7 * * 1" }  # Mondays, before work
parameters = { a = 2, label = "weekly" }

# The second one introduces itself here.
[[job]]
name = "nightly"
notebooks = ["adds_numbers.ipynb"]
schedule = { cron = "30 1 * * *", timezone = "Europe/Paris" }
# a closing remark
"""
NEW_JOB = {
    "name": "added",
    "notebooks": "adds_numbers.ipynb",
    "schedule": {"cron": "0 8 * * *"},
    "parameters": {"b": 1.5},
    "secrets": ["MY_TOKEN"],
}


@pytest.fixture
def settings(tmp_path: Path):
    shutil.copy(TEST_NOTEBOOKS / "adds_numbers.ipynb", tmp_path / "adds_numbers.ipynb")
    (tmp_path / "jobs.toml").write_text(USER_FILE, encoding="utf-8")
    return load_settings({"SHIOL_HOME": str(tmp_path)})


def text_of(settings) -> str:
    return settings.jobs_path.read_text(encoding="utf-8")


def test_add_appends_and_keeps_everything_before_byte_for_byte(settings):
    spec = add_job(settings, NEW_JOB)
    text = text_of(settings)
    assert text.startswith(USER_FILE + '\n[[job]]\nname = "added"\n')
    assert spec.parameters == {"b": 1.5} and spec.secrets == ("MY_TOKEN",)
    assert list(effective_jobs(settings)) == [*JOBS, "weekly", "nightly", "added"]


def test_add_then_remove_gives_back_the_same_bytes(settings):
    add_job(settings, NEW_JOB)
    remove_job(settings, "added")
    assert text_of(settings) == USER_FILE


def test_pause_then_resume_gives_back_the_same_bytes(settings):
    set_paused(settings, "weekly", True)
    text = text_of(settings)
    assert 'parameters = { a = 2, label = "weekly" }\npaused = true\n\n# The second one' in text
    assert effective_jobs(settings)["weekly"].paused
    set_paused(settings, "weekly", False)
    assert text_of(settings) == USER_FILE
    assert not effective_jobs(settings)["weekly"].paused


def test_pausing_a_builtin_job_adds_a_table_that_resuming_removes(settings):
    set_paused(settings, "pipeline", True)
    assert text_of(settings) == USER_FILE + '\n[[job]]\nname = "pipeline"\npaused = true\n'
    assert effective_jobs(settings)["pipeline"].paused
    set_paused(settings, "pipeline", False)
    assert text_of(settings) == USER_FILE


def test_removing_a_job_keeps_the_comment_that_introduces_the_next(settings):
    remove_job(settings, "weekly")
    assert text_of(settings) == USER_FILE.replace(
        '[[job]]\nname = "weekly"   # the Monday report\nnotebooks = "adds_numbers.ipynb"\n'
        'schedule = { cron = "0 7 * * 1" }  # Mondays, before work\nparameters = { a = 2, label = "weekly" }\n\n',
        "",
    )


def test_removing_the_last_job_keeps_its_closing_comment(settings):
    remove_job(settings, "nightly")
    assert text_of(settings) == USER_FILE.split("\n# The second one")[0] + "\n# a closing remark\n"


def test_a_refused_edit_leaves_the_file_untouched_and_no_temporary(settings):
    for table in (
        {**NEW_JOB, "name": "weekly"},
        {**NEW_JOB, "schedule": {"cron": "0 0 31 2 *"}},
        {**NEW_JOB, "parameters": {"a": "two"}},
        {**NEW_JOB, "secrets": ["no-dash"]},
    ):
        with pytest.raises(JobsFileError) as caught:
            add_job(settings, table)
        assert caught.value.problems
        assert text_of(settings) == USER_FILE
    with pytest.raises(JobsFileError, match="no such job"):
        remove_job(settings, "pipeline")  # built-in, not in the file: nothing to remove
    with pytest.raises(JobsFileError, match="no such job"):
        set_paused(settings, "ghost", True)
    assert text_of(settings) == USER_FILE
    assert sorted(p.name for p in settings.jobs_path.parent.iterdir()) == ["adds_numbers.ipynb", "jobs.toml"]


def test_add_creates_a_missing_file_with_a_header(tmp_path):
    shutil.copy(TEST_NOTEBOOKS / "adds_numbers.ipynb", tmp_path / "adds_numbers.ipynb")
    settings = load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_JOBS_FILE": str(tmp_path / "conf" / "my.toml")})
    add_job(settings, {**NEW_JOB, "notebooks": str(tmp_path / "adds_numbers.ipynb")})
    text = (tmp_path / "conf" / "my.toml").read_text(encoding="utf-8")
    assert text.startswith(NEW_FILE_HEADER + '\n[[job]]\nname = "added"\n')
    assert "added" in effective_jobs(settings)


def test_an_unparsable_file_is_refused_not_overwritten(settings):
    settings.jobs_path.write_text(USER_FILE + "[[job]\n", encoding="utf-8")
    with pytest.raises(JobsFileError, match="not valid TOML"):
        add_job(settings, NEW_JOB)
    assert text_of(settings) == USER_FILE + "[[job]\n"


def test_removing_a_middle_job_removes_its_introduction_only(settings):
    """The comment right above its [[job]] line goes with it; its other comments stay (they may be notes)."""
    add_job(settings, NEW_JOB)
    text = text_of(settings)
    middle = text.index("# The second one")
    settings.jobs_path.write_text(text, encoding="utf-8")
    remove_job(settings, "nightly")
    rest = text[text.index('[[job]]\nname = "added"') :]
    assert text_of(settings) == text[:middle] + "# a closing remark\n\n" + rest
