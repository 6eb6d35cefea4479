"""Usage errors exit 2 with a message that says what is wrong."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from shiol_lib.cli.main import cli


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), prog_name="shiol")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "show", "nosuch"), "'nosuch' is not a run id"),
        (("runs", "show", "../../etc"), "is not a run id"),
        (("rerun", "nosuch"), "'nosuch' is not a run id"),
        (("runs", "diff", "20261128T151500Z-a1b2c3", "nosuch"), "'nosuch' is not a run id"),
        (("runs", "prune", "--keep-days", "-1"), "-1 is not in the range x>=0"),
        (("runs", "list", "--limit", "-1"), "-1 is not in the range x>=1"),
    ],
)
def test_a_usage_error_exits_2_and_says_why(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_well_formed_run_id_missing_from_the_archive_is_an_archive_error(invoke):
    result = invoke("runs", "show", "20261128T151500Z-a1b2c3")
    assert result.exit_code == 7
    assert "is not in the archive" in result.stderr


def test_prune_with_zero_days_is_allowed(invoke, tmp_path):
    (tmp_path / "runs").mkdir()
    result = invoke("runs", "prune", "--keep-days", "0")
    assert result.exit_code == 0, result.output
    assert "pruned 0 run folder(s)" in result.stdout
