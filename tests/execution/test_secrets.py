"""Secrets: resolved by name, handed to the kernel only, and masked in everything archived.

One real run of an analyst job naming the secret (``prints_secret.ipynb`` through the job walk, the archive
and ``shiol runs verify``) prints a canary every way a notebook can; no file under SHIOL_HOME may hold its
bytes. The same job with its variable not set fails, naming the job and the variable.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from shiol_lib.cli.main import cli
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import SecretMissingError
from shiol_lib.execution.secrets import MASK, RedactingWriter, Redactor, resolve_secrets
from shiol_lib.jobs import run as job_run
from shiol_lib.settings import Settings, load_settings
from shiol_lib.store import open_store

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
CANARY = "canary-7f3a9c2e51d04b8e"
VARIABLE = "SHIOL_TEST_SECRET"
JOB = "secret-printer"


def test_resolve_secrets_reads_each_named_variable():
    assert resolve_secrets(["A_KEY", "B_KEY"], {"A_KEY": "alpha-1", "B_KEY": "beta-22", "C": "x"}) == {
        "A_KEY": "alpha-1",
        "B_KEY": "beta-22",
    }


@pytest.mark.parametrize(("environ", "state"), [({}, "not set"), ({"API_TOKEN": ""}, "empty")])
def test_a_missing_secret_names_the_job_the_variable_and_what_to_do(environ, state):
    with pytest.raises(SecretMissingError) as caught:
        resolve_secrets(["API_TOKEN"], environ, job="weekly_report")
    message = str(caught.value)
    assert f"job 'weekly_report': secret variable 'API_TOKEN' is {state}" in message
    assert "set it there" in message and "remove it from the job's secrets" in message
    assert (caught.value.variable, caught.value.job) == ("API_TOKEN", "weekly_report")


def test_redactor_masks_every_text_of_a_notebook_but_not_images():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"token = '{CANARY}'")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"x {CANARY[:9]}"),
        nbformat.v4.new_output("stream", name="stdout", text=f"{CANARY[9:]} y\n"),  # one value, two messages
        nbformat.v4.new_output(
            "display_data", data={"text/plain": f"'{CANARY}'", "text/html": f"<b>{CANARY}</b>", "image/png": "QUJD"}
        ),
        nbformat.v4.new_output(
            "error", ename="ValueError", evalue=f"bad {CANARY}", traceback=[f"ValueError: {CANARY}"]
        ),
    ]
    nb.cells.append(cell)
    redacted = Redactor({VARIABLE: CANARY}).notebook(nb)
    text = nbformat.writes(redacted)
    assert CANARY not in text and CANARY[:9] not in text
    outputs = redacted.cells[0].outputs
    assert outputs[0].text == f"x {MASK} y\n"  # the two stream messages joined, then masked
    assert outputs[1].data == {"text/plain": f"'{MASK}'", "text/html": f"<b>{MASK}</b>", "image/png": "QUJD"}
    assert (outputs[2].evalue, outputs[2].traceback) == (f"bad {MASK}", [f"ValueError: {MASK}"])
    assert redacted.cells[0].source == f"token = '{MASK}'"
    assert CANARY in nbformat.writes(nb)  # the original is left as it was


def test_redacting_writer_masks_a_value_split_across_writes():
    target = io.StringIO()
    writer = RedactingWriter(target, Redactor({VARIABLE: CANARY, "OTHER": "second-secret"}))
    for char in f"start {CANARY} middle second-secret end{CANARY[:5]}":
        writer.write(char)
    writer.flush()
    assert target.getvalue() == f"start {MASK} middle {MASK} end"[: len(target.getvalue())]  # the tail is held
    writer.close()
    assert target.getvalue() == f"start {MASK} middle {MASK} end{CANARY[:5]}"  # a prefix alone is no secret


def test_short_values_are_not_redacted_and_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="shiol_lib.execution.secrets"):
        redactor = Redactor({"PIN": "123", "TOKEN": "abcd"})
    assert redactor.text("123 abcd") == f"123 {MASK}"
    assert "PIN" in caplog.text and "123" not in caplog.text and "TOKEN" not in caplog.text


def secret_job(home: Path) -> Settings:
    """Settings of ``home`` with one analyst job that names the secret and prints it (``prints_secret.ipynb``)."""
    settings = load_settings({"SHIOL_HOME": str(home)})
    home.mkdir(parents=True, exist_ok=True)
    settings.jobs_path.write_text(
        f'[[job]]\nname = "{JOB}"\nnotebooks = "{NOTEBOOKS / "prints_secret.ipynb"}"\nsecrets = ["{VARIABLE}"]\n',
        encoding="utf-8",
    )
    return settings


@pytest.mark.slow
def test_a_secret_not_set_fails_the_run_naming_job_and_variable_without_a_traceback(tmp_path):
    """``shiol jobs run``: a clear message, the run recorded failed (configuration), no kernel output archived."""
    home = tmp_path / "home"
    settings = secret_job(home)
    env = {k: v for k, v in os.environ.items() if k != VARIABLE and not k.startswith("SHIOL_")}
    done = subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", "jobs", "run", JOB],
        env={**env, "SHIOL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 6, done.stderr
    assert f"job '{JOB}': secret variable '{VARIABLE}' is not set" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    with open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5).connect() as conn:
        rows = conn.execute("SELECT job, status, error_class, error FROM runs").fetchall()
    assert len(rows) == 1 and rows[0][:3] == (JOB, "failed", "configuration") and VARIABLE in rows[0][3]


@pytest.mark.slow
def test_a_printed_secret_is_nowhere_under_the_home_and_the_archive_verifies(tmp_path, monkeypatch, new_children):
    """The kernel gets the value (the notebook asserts it); the notebook, HTML, log, store and ledger do not."""
    home = tmp_path / "home"
    settings = secret_job(home)
    monkeypatch.setenv(VARIABLE, CANARY)  # the job's secret, set where it runs
    outcome = job_run.run_job(settings, JOB)

    assert outcome.manifest.status == RunStatus.FAILED  # the last cell raises, its message holding the secret
    step = outcome.manifest.steps[0]
    assert step.failed_cell == 4 and f"ValueError: token {MASK} was rejected" in str(step.error)  # cell 2 asserted
    leaks = [str(p) for p in home.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == []
    with open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=5).connect() as conn:  # compressed?
        rows = [conn.execute(f"SELECT * FROM {table}").fetchall() for table in ("runs", "run_steps", "dead_letters")]
    assert CANARY not in repr(rows) and MASK in repr(rows)
    folder = next(home.glob("runs/**/prints_secret.ipynb")).parent
    for name in ("prints_secret.ipynb", "prints_secret.html", "prints_secret.log"):
        assert MASK in (folder / name).read_text(encoding="utf-8"), name
    assert "child ***" in (folder / "prints_secret.log").read_text(encoding="utf-8")  # a child process's echo
    verified = CliRunner().invoke(cli, ["runs", "verify"], env={"SHIOL_HOME": str(home)})
    assert verified.exit_code == 0 and "archive intact" in verified.output, verified.output
    assert new_children() == []
