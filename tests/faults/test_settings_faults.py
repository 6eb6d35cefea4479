"""Settings that used to slip through, tried at the real command line: every number, URL, key and log-file
setting with several hostile values, each given to a real `shiol` process (the commands rotate: reading,
writing and running ones alike).

Each must be refused before anything is done: exit 2, one line on stderr that starts with
``error: NAME=`` (or ``error: NAME is ...``), no traceback, and nothing written under SHIOL_HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiol_lib.domain.runs import ExitCode
from shiol_lib.settings import _VARIABLES

pytestmark = pytest.mark.faults("settings")

NUMERIC = [v.env for v in _VARIABLES if v.parse.__qualname__.startswith("_number")]
URLS = [v.env for v in _VARIABLES if v.parse.__name__ in ("_url", "_optional_url")]
SECRETS = [v.env for v in _VARIABLES if v.parse.__name__ == "_secret"]

# int() and float() take all of these but the last four; none is a number a person wrote in ASCII digits.
HOSTILE_NUMBERS = ["８０", "٨٠", "²", "1_0", "0x10", "-1", "NaN", "inf", "1,5"]
HOSTILE_URLS = [
    "http://",
    "https://",
    "http:///path",
    "http://:8080",
    "http://host:port",
    "http://host:99999",
    "https://ホスト.example",
    "ftp://host.example",
    "host.example",
]
BLANKS = ["   ", "\t", " \t  "]
COMMANDS = [
    ["status"],
    ["update-data", "--offline"],
    ["schedule", "plan"],
    ["runs", "verify"],
    ["run", "pipeline", "--offline"],
    ["init"],
]


def _refused(tmp_path: Path, cases: list[tuple[str, str]]) -> list[str]:
    """Run one real command per case (name, value); the description of each case that was not refused."""
    bad = []
    for n, (name, value) in enumerate(cases):
        home = tmp_path / f"home{n}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
        env.update(SHIOL_HOME=str(home), **{name: value})
        command = COMMANDS[n % len(COMMANDS)]
        done = subprocess.run(
            [sys.executable, "-m", "shiol_lib.cli", *command], env=env, capture_output=True, text=True, timeout=120
        )
        lines = done.stderr.splitlines()
        held = (
            done.returncode == ExitCode.USAGE
            and len(lines) == 1
            and lines[0].startswith(f"error: {name}")
            and "Traceback" not in done.stderr
            and done.stdout == ""
            and not home.exists()
        )
        if not held:
            bad.append(f"{name}={value!r} `shiol {' '.join(command)}`: exit {done.returncode}, {done.stderr!r}")
    return bad


@pytest.mark.parametrize("offset", range(3), ids=["values 1-3", "values 4-6", "values 7-9"])
def test_every_number_refuses_what_is_not_ascii_digits_or_out_of_range(tmp_path, fault_cases, offset):
    # Each number setting gets three of the hostile values; over the three parts, all of them.
    cases = [(name, HOSTILE_NUMBERS[(i + offset * 3) % len(HOSTILE_NUMBERS)]) for i, name in enumerate(NUMERIC)]
    cases += [("SHIOL_RETRY_BACKOFF_S", value) for value in ("60,１２０", "60,,-1", "0")][offset : offset + 1]
    fault_cases(len(cases))
    assert _refused(tmp_path, cases) == []


def test_every_url_must_name_a_host(tmp_path, fault_cases):
    cases = [(name, url) for name in URLS for url in HOSTILE_URLS]
    fault_cases(len(cases))
    assert _refused(tmp_path, cases) == []


def test_every_key_and_token_of_blanks_is_refused_not_taken_as_unset(tmp_path, fault_cases):
    cases = [(name, blank) for name in SECRETS for blank in BLANKS]
    fault_cases(len(cases))
    assert _refused(tmp_path, cases) == []


def test_a_log_file_whose_folder_is_missing_or_that_is_a_folder_is_refused(tmp_path, fault_cases):
    folder = tmp_path / "logs"
    folder.mkdir()
    cases = [
        ("SHIOL_LOG_FILE", str(tmp_path / "nowhere" / "shiol.log")),
        ("SHIOL_LOG_FILE", str(tmp_path / "nowhere" / "deeper" / "shiol.log")),
        ("SHIOL_LOG_FILE", str(folder)),
        ("SHIOL_LOG_FILE", str(folder) + "/"),
        ("SHIOL_LOG_FILE", "/"),
        ("SHIOL_LOG_FILE", "/nonexistent-folder/shiol.log"),
    ]
    fault_cases(len(cases))
    assert _refused(tmp_path, cases) == []
