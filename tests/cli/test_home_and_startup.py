"""The home is never guessed (read-only commands refuse a missing store), and `shiol` starts quickly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from shiol_lib.cli.main import cli
from shiol_lib.domain.runs import MissedKind

READ_ONLY = [
    ["status"],
    ["runs", "list"],
    ["runs", "show", "20240701T000000Z-abcdef"],
    ["runs", "verify"],
    ["runs", "diff", "20240701T000000Z-abcdef", "20240702T000000Z-abcdef"],
    ["schedule", "plan"],
    ["deadletters"],
    ["runs", "missed"],
]
HEAVY = ("pandas", "numpy", "papermill", "nbformat", "nbconvert", "matplotlib", "sklearn", "xgboost", "jsonschema")


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), prog_name="shiol")


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_command_that_only_reads_refuses_a_missing_store_and_creates_nothing(invoke, tmp_path, args):
    done = invoke(*args)
    store = tmp_path / "home" / "var" / "shiol.duckdb"
    assert done.exit_code == 5, done.output
    assert f"no store at {store}; run `shiol update-data` or set SHIOL_HOME" in done.output
    assert not (tmp_path / "home").exists()


def test_init_creates_the_store_and_the_archive_and_says_where(invoke, tmp_path):
    home = (tmp_path / "home").resolve()
    done = invoke("init")
    assert done.exit_code == 0, done.output
    assert f"store:   {home / 'var' / 'shiol.duckdb'} (created" in done.output
    assert f"archive: {home / 'runs'}" in done.output
    assert (home / "var" / "shiol.duckdb").is_file() and (home / "runs").is_dir()
    assert "already there" in invoke("init").output
    assert invoke("status").exit_code == 0


def test_the_first_write_creates_the_store_and_says_where(invoke, tmp_path):
    done = invoke("update-data", "--offline")
    assert done.exit_code == 0, done.output
    assert f"created the store at {(tmp_path / 'home').resolve() / 'var' / 'shiol.duckdb'}" in done.output


def test_without_shiol_home_the_store_is_in_the_per_user_folder_not_the_cwd(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(HOME=str(tmp_path / "user"), XDG_DATA_HOME=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5
    assert f"no store at {(tmp_path / 'data').resolve() / 'shiol' / 'var' / 'shiol.duckdb'}" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_runs_missed_offers_exactly_the_missed_kinds_of_the_domain():
    kind = next(p for p in cli.commands["runs"].commands["missed"].params if p.name == "kind")
    assert tuple(kind.type.choices) == tuple(k.value for k in MissedKind) == ("slot", "draw")


def _imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_help_imports_no_pandas_papermill_or_nbconvert():
    modules = _imported("-m", "shiol_lib.cli", "--help")
    assert "shiol_lib.cli.main" in modules
    assert not _heavy(modules), _heavy(modules)


def test_status_imports_no_pandas_papermill_or_nbconvert(tmp_path):
    env = {**os.environ, "SHIOL_HOME": str(tmp_path)}
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    modules = _imported("-m", "shiol_lib.cli", "status", env=env)
    assert "shiol_lib.store.core" in modules
    assert not _heavy(modules), _heavy(modules)


def test_schedule_plan_imports_no_pandas_papermill_or_nbformat(tmp_path):
    env = {**os.environ, "SHIOL_HOME": str(tmp_path)}
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    modules = _imported("-m", "shiol_lib.cli", "schedule", "plan", "--json", env=env)
    assert "shiol_lib.scheduling.planner" in modules
    assert not _heavy(modules), _heavy(modules)


def test_the_checkout_commits_nothing_under_runs():
    # The Quick start's home is the checkout: a committed file under runs/ is unknown to the ledger, and
    # `shiol runs verify` rightly reports it (a runs/README.md once made every fresh clone "NOT intact").
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files", "runs"], cwd=root, capture_output=True, text=True, check=True)
    assert tracked.stdout.split() == []
