"""Usage errors exit 2 with a message that says what is wrong; ``shiol --version`` prints the version."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

import shiol_lib
from shiol_lib import cli as cli_package
from shiol_lib.cli.main import cli

SHIOL = str(Path(sys.executable).parent / "shiol")


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), prog_name="shiol")


def test_version_prints_the_distribution_version_even_with_bad_settings(tmp_path):
    env = {**os.environ, "SHIOL_HOME": str(tmp_path), "SHIOL_GRACE_S": "not-a-number"}
    done = subprocess.run([SHIOL, "--version"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"shiol {metadata.version('shiol-workbench')}\n"


def test_version_falls_back_to_the_package_attribute_when_not_installed(monkeypatch):
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli_package.package_version() == shiol_lib.__version__


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "show", "nosuch"), "'nosuch' is not a run id"),
        (("runs", "show", "../../etc"), "is not a run id"),
        (("rerun", "nosuch"), "'nosuch' is not a run id"),
        (("runs", "diff", "20261128T151500Z-a1b2c3", "nosuch"), "'nosuch' is not a run id"),
        (("runs", "prune", "--keep-days", "-1"), "-1 is not in the range x>=0"),
        (("runs", "list", "--limit", "-1"), "-1 is not in the range x>=1"),
        (("runs", "missed", "--limit", "0"), "0 is not in the range x>=1"),
        (("runs", "missed", "--job", "nosuch"), "'nosuch' is not one of"),
        (("service", "install"), "give exactly one of --print or --output FILE"),
    ],
)
def test_a_usage_error_exits_2_and_says_why(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_well_formed_run_id_missing_from_the_archive_is_an_archive_error(invoke):
    assert invoke("init").exit_code == 0  # without a store, `runs show` refuses first (exit 5)
    result = invoke("runs", "show", "20261128T151500Z-a1b2c3")
    assert result.exit_code == 7
    assert "is not in the archive" in result.stderr


def test_prune_with_zero_days_is_allowed(invoke, tmp_path):
    (tmp_path / "runs").mkdir()
    result = invoke("runs", "prune", "--keep-days", "0")
    assert result.exit_code == 0, result.output
    assert "pruned 0 run folder(s)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "run_id", "20240702T032900Z-a1b2c3"], "-p run_id '20240702T032900Z-a1b2c3' is refused"),
        (["-p", "run_id", "manual"], "archived runs are read-only"),
        (["-p", "db_path", "/tmp/another.duckdb"], "the step would write to another store than this run's"),
    ],
)
def test_a_step_cannot_write_under_another_run_or_into_another_store(invoke, tmp_path, args, message):
    result = invoke("run", "step", "generate_predictions", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs" / "step").exists()  # refused before anything was recorded


def test_a_value_yaml_cannot_read_is_a_usage_error_naming_the_parameter(invoke):
    result = invoke("run", "step", "generate_predictions", "-p", "n_predictions", "[1, 2")
    assert result.exit_code == 2, result.output
    assert "-p n_predictions '[1, 2': the value is not valid YAML" in result.output
    assert "Traceback" not in result.output


def test_a_str_parameter_takes_the_text_as_given(tmp_path):
    from shiol_lib.cli.runs import parse_parameters

    notebook = Path(__file__).parents[2] / "notebooks" / "50_generate_predictions.ipynb"
    values = parse_parameters(
        notebook, (("target_draw_date", "2024-07-01"), ("n_predictions", "5"), ("history_end", "no: colon"))
    )
    assert values == {"target_draw_date": "2024-07-01", "n_predictions": 5, "history_end": "no: colon"}
