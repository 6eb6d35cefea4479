"""``shiol service install``: the systemd unit of this installation's scheduler.

The unit is checked by ``systemd-analyze verify`` where it can run, and always by parsing it with
configparser and asserting the settings that matter (what runs, as whom, how it stops and restarts,
what it may write). Rendering runs nothing, so these tests run wherever the checkout lies: where this
installation is in a temporary folder (a CI clone under /tmp, which a service cannot use), the unit is
rendered for a stand-in installation outside it, and the refusal of the real one is asserted.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from shiol_lib.cli import service
from shiol_lib.cli.main import cli
from shiol_lib.errors import ConfigError
from shiol_lib.scheduling.scheduler import STOP_GRACE_S
from shiol_lib.settings import load_settings

HOME = Path("/srv/shiol-unit-test")  # a unit names a path; it needs not exist to be written or verified
ENV_FILE = Path("/etc/shiol/shiol.env")
# An installation outside every temporary folder, for checkouts that lie in one. Its script is a real
# executable (systemd-analyze verify checks that ExecStart exists), its code paths need not exist.
STAND_IN_ROOT = Path("/opt/shiol-unit-test")
_THIS_INSTALLATION = service.this_installation  # kept: the command's is replaced by the stand-in in tests


def _in_temporary(installation: service.Installation) -> list[Path]:
    return [p for p in installation.code if service._under(p, service.TEMPORARY_DIRECTORIES)]


def installation(settings) -> service.Installation:
    """This installation, or the stand-in where this one lies in a temporary folder."""
    real = _THIS_INSTALLATION(settings)
    if not _in_temporary(real):
        return real
    script = Path(shutil.which("true") or "/bin/true").resolve()
    return service.Installation(
        script, (script, STAND_IN_ROOT / "venv", Path("/usr"), STAND_IN_ROOT / "src", STAND_IN_ROOT / "notebooks")
    )


def render(env: dict[str, str] | None = None, **options) -> str:
    """The unit for ``HOME`` and :func:`installation`."""
    settings = load_settings({"SHIOL_HOME": str(HOME), **(env or {})})
    return service.render_unit(
        settings, **{"user": "shiol", "env_file": ENV_FILE, "installation": installation(settings), **options}
    )


@pytest.fixture
def installed_here(monkeypatch):
    """``shiol service install`` renders for :func:`installation` (the stand-in only where this one is in /tmp)."""
    monkeypatch.setattr(service, "this_installation", installation)


def test_the_console_script_is_this_environments_shiol():
    script = service.console_script()
    assert script.is_file() and os.access(script, os.X_OK) and script.name == "shiol"
    assert script == service.this_installation(load_settings({"SHIOL_HOME": str(HOME)})).executable


def test_an_installation_in_a_temporary_folder_is_refused():
    settings = load_settings({"SHIOL_HOME": str(HOME)})
    in_tmp = service.Installation(Path("/tmp/ci/venv/bin/shiol"), (Path("/tmp/ci/venv"), Path("/tmp/ci/src")))
    with pytest.raises(ConfigError, match="/tmp/ci/venv lies in a temporary folder"):
        service.render_unit(settings, installation=in_tmp)
    real = service.this_installation(settings)
    if _in_temporary(real):  # this checkout is such an installation: the command refuses it, exit 2
        with pytest.raises(ConfigError, match="lies in a temporary folder"):
            service.render_unit(settings)


def parse(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(text)
    return unit


def test_the_unit_runs_the_scheduler_of_this_environment_as_the_dedicated_user():
    text = render()
    unit = parse(text)
    assert "${" not in text
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    executable, *arguments = svc["ExecStart"].split()
    assert Path(executable).is_absolute() and Path(executable).is_file() and os.access(executable, os.X_OK)
    assert Path(executable) == installation(load_settings({"SHIOL_HOME": str(HOME)})).executable
    assert arguments == ["schedule", "run"]
    assert svc["User"] == "shiol"
    assert svc["WorkingDirectory"] == str(HOME)
    assert f"SHIOL_HOME={HOME}" in svc["Environment"].split()
    assert svc["EnvironmentFile"] == str(ENV_FILE)
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_restarts_on_failure_and_stops_after_the_scheduler_grace():
    svc = parse(render())["Service"]
    assert svc["Restart"] == "on-failure"
    assert svc["RestartPreventExitStatus"] == "2"  # a configuration error does not loop
    assert int(svc["TimeoutStopSec"]) > STOP_GRACE_S + service.INTERRUPT_WAIT_S
    assert svc["KillMode"] in {"mixed", "control-group"}  # kernels die with the service
    assert svc["KillSignal"] == "SIGTERM"


def test_the_unit_is_hardened_and_may_write_only_the_store_and_archive():
    svc = parse(render())["Service"]
    assert svc["ProtectSystem"] == "strict"
    assert svc["ReadWritePaths"].split() == [str(HOME)]
    assert svc["NoNewPrivileges"] == "yes" and svc["PrivateTmp"] == "yes"
    assert svc["ProtectHome"] in {"yes", "read-only"}
    assert svc["CacheDirectory"] == "%N" and "HOME=%C/%N" in svc["Environment"].split()


def test_a_store_or_archive_outside_the_home_is_writable_too():
    svc = parse(render({"SHIOL_DB_PATH": "/var/lib/shiol/db/shiol.duckdb", "SHIOL_RUNS_DIR": f"{HOME}/archive"}))
    assert svc["Service"]["ReadWritePaths"].split() == [str(HOME), "/var/lib/shiol/db"]


def test_protect_home_is_yes_unless_something_needed_lives_in_a_home_directory():
    assert service._protect_home([Path("/srv/shiol")], [Path("/opt/shiol/venv")])[0] == "yes"
    value, reason = service._protect_home([Path("/home/ana/shiol")], [Path("/opt/shiol/venv")])
    assert value == "read-only" and "writes /home/ana/shiol" in reason
    value, reason = service._protect_home([Path("/srv/shiol")], [Path("/root/.pyenv/versions/3.11.7")])
    assert value == "read-only" and "reads /root/.pyenv" in reason
    assert service._protect_home([Path("/srv/shiol")], [Path("/homework")])[0] == "yes"


@pytest.mark.parametrize(
    ("env", "options", "message"),
    [
        ({"SHIOL_HOME": "/tmp/shiol"}, {}, "lies in a temporary folder"),
        ({"SHIOL_HOME": "/srv/my shiol"}, {}, "has a space or a character"),
        ({}, {"env_file": Path("/etc/shiol/100%.env")}, "has a space or a character"),
        ({}, {"user": "Shiol Admin"}, "is not a system user name"),
    ],
)
def test_paths_and_users_a_unit_cannot_hold_are_refused(env, options, message):
    with pytest.raises(ConfigError, match=message):
        render(env, **options)


# --- systemd-analyze ------------------------------------------------------------------------------


def _systemd_analyze(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    probe = _systemd_analyze(tmp_path, "shiol-probe.service", "[Service]\nExecStart=/bin/true\n")
    if probe.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {probe.stderr.strip() or probe.returncode}")
    done = _systemd_analyze(tmp_path, "shiol-scheduler.service", render())
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys and bad values are only warnings: none wanted


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture
def invoke(monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(HOME))
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, ["service", "install", *args], prog_name="shiol")


def test_print_writes_the_unit_to_stdout(invoke, installed_here):
    expected = render()
    result = invoke("--print", "--user", "shiol", "--env-file", str(ENV_FILE))
    assert result.exit_code == 0, result.output
    assert result.stdout == expected


def test_output_writes_the_file_atomically_and_never_replaces_one_silently(invoke, tmp_path, installed_here):
    target = tmp_path / "shiol-scheduler.service"
    result = invoke("--output", str(target), "--user", "shiol")
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render()
    assert "systemctl enable --now shiol-scheduler" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shiol-scheduler.service"]  # no temporary left

    before = target.stat().st_ino
    refused = invoke("--output", str(target), "--user", "other")
    assert refused.exit_code == 2 and "pass --force" in refused.stderr
    assert target.read_text(encoding="utf-8") == render()

    replaced = invoke("--output", str(target), "--user", "other", "--force")
    assert replaced.exit_code == 0, replaced.output
    assert parse(target.read_text(encoding="utf-8"))["Service"]["User"] == "other"
    assert target.stat().st_ino != before  # a new file renamed into place, not rewritten in place


def test_print_and_output_together_is_a_usage_error(invoke, tmp_path):
    result = invoke("--print", "--output", str(tmp_path / "x.service"))
    assert result.exit_code == 2 and "exactly one of --print or --output" in result.stderr
    assert not (tmp_path / "x.service").exists()
