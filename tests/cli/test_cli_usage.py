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
