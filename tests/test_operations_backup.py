"""docs/OPERATIONS.md, exercised: every ``shiol`` command it names exists with the options it gives, and
its backup and restore blocks (the ones marked ``<!-- tested: NAME -->``) work on a real home.

The backup test builds a home with ``shiol update-data --offline`` and one real ``data_update`` run,
backs it up by running the runbook's block with bash, deletes the home, restores it with the runbook's
block, and checks that ``shiol runs verify`` passes and the store holds the same draws and runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from shiol_lib.cli.main import cli

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "OPERATIONS.md"
BIN = Path(sys.executable).parent
SHIOL = str(BIN / "shiol")
TESTED_BLOCK = re.compile(r"<!-- tested: (?P<name>[\w-]+) -->\n```sh\n(?P<body>.*?)```", re.DOTALL)
CODE = re.compile(r"```[a-z]*\n(?P<block>.*?)```|`(?P<span>[^`\n]+)`", re.DOTALL)
# `shiol` as a command: at the start of a code line or span, or after a path, a prompt or a separator
# (not `sudo -u shiol`, `chown shiol:shiol` or `shiol-scheduler`), followed by a subcommand or an option
# (not `shiol "$@"` in the wrapper, nor `shiol ...` in prose).
COMMAND = re.compile(r"(?:^|/bin/|\$ |&& |; )shiol((?: +[a-z-][^\s;&|`'#]*)(?: +[^\s;&|`'#]+)*)", re.MULTILINE)


def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def runbook_commands() -> list[str]:
    """Every ``shiol ...`` command line the runbook shows, placeholders included."""
    found = []
    for match in CODE.finditer(runbook()):
        code = (match.group("block") or match.group("span")).replace("\\\n", " ")  # join continued lines
        found += [f"shiol{m.group(1)}".rstrip(" \\") for m in COMMAND.finditer(code)]
    return list(dict.fromkeys(found))


def resolve(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """The subcommand path a command line names, the command it reaches, and the options it gives."""
    command: click.Command = cli
    path, options = [], []
    for word in words:
        if word.startswith("--"):
            options.append(word.split("=")[0])
        elif isinstance(command, click.Group) and not options and word in command.commands:
            command = command.commands[word]
            path.append(word)
    return path, command, options


def test_the_runbook_names_the_commands_an_operator_needs():
    named = {" ".join(resolve(shlex.split(c)[1:])[0]) for c in runbook_commands()}
    assert {
        "service install",
        "schedule run",
        "schedule plan",
        "status",
        "update-data",
        "deadletters",
        "runs verify",
        "runs prune",
        "runs missed",
        "runs list",
        "runs show",
        "run",
    } <= named


@pytest.mark.parametrize("line", runbook_commands())
def test_every_command_in_the_runbook_exists_with_its_options(line, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    path, command, options = resolve(shlex.split(line)[1:])
    assert path or options == ["--version"], f"{line!r} names no shiol command"
    known = {opt for param in command.params for opt in param.opts}
    if command is not cli:
        known |= {opt for param in cli.params for opt in param.opts}
    unknown = [opt for opt in options if opt not in known]
    assert not unknown, f"{line!r}: `shiol {' '.join(path)}` has no option {unknown}"
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="shiol")
    assert result.exit_code == 0, result.output


def test_the_runbook_marks_its_backup_and_restore_blocks():
    assert {m.group("name") for m in TESTED_BLOCK.finditer(runbook())} == {"backup-cold", "backup-hot", "restore"}


# --- backup and restore, for real ------------------------------------------------------------------


def block(name: str) -> str:
    """The body of the runbook's code block marked ``<!-- tested: name -->``."""
    for match in TESTED_BLOCK.finditer(runbook()):
        if match.group("name") == name:
            return match.group("body")
    raise AssertionError(f"docs/OPERATIONS.md has no block marked <!-- tested: {name} -->")


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SHIOL_HOME": str(home),
        "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
        "SHIOL_HTTP_RETRIES": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }
    env.pop("SHIOL_MUSL_API_KEY", None)
    return env


def shiol(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SHIOL, *args], env=environment(home), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_block(name: str, home: Path, backup: Path) -> subprocess.CompletedProcess:
    """Run a runbook block with bash, as the runbook says: SHIOL_HOME and BACKUP set, `shiol` on the PATH."""
    script = f"set -euo pipefail\n{block(name)}"
    done = subprocess.run(
        ["bash", "-c", script],
        env=environment(home, BACKUP=str(backup)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"block {name} failed:\n{done.stdout}\n{done.stderr}"
    return done


def facts(home: Path) -> tuple[dict, list[tuple[str, str]]]:
    """What a restore must bring back: the status draws and every recorded run."""
    status = shiol(home, "status", "--json")
    assert status.returncode == 0, status.stderr
    runs = shiol(home, "runs", "list", "--json")
    assert runs.returncode == 0, runs.stderr
    return json.loads(status.stdout)["draws"], [(r["run_id"], r["status"]) for r in json.loads(runs.stdout)]


@pytest.fixture(scope="module")
def pristine_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the seeded store and one real data_update run in its archive."""
    home = tmp_path_factory.mktemp("pristine") / "home"
    seeded = shiol(home, "update-data", "--offline")
    assert seeded.returncode == 0, seeded.stderr
    ran = shiol(home, "run", "data_update", "--offline", "--json", timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["status"] == "success"
    return home


@pytest.mark.slow
@pytest.mark.parametrize("backup_block", ["backup-cold", "backup-hot"])
def test_backup_then_restore_as_the_runbook_says(pristine_home, tmp_path, backup_block):
    home = tmp_path / "srv" / "shiol"
    shutil.copytree(pristine_home, home)
    draws, runs = facts(home)
    assert draws["count"] == 1647 and [status for _, status in runs] == ["success"]
    backup = tmp_path / "backups" / "shiol.tar.gz"
    backup.parent.mkdir()

    run_block(backup_block, home, backup)
    assert backup.stat().st_size > 0
    shutil.rmtree(home)

    restored = run_block("restore", home, backup)
    assert "archive intact: 1 ledger entries" in restored.stdout
    verify = shiol(home, "runs", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert facts(home) == (draws, runs)
