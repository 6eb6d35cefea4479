"""``shiol service install``: the systemd unit that runs this installation's scheduler.

The unit is the template ``shiol-scheduler.service.in`` beside this module (package data) filled in
with this installation's paths: the ``shiol`` console script of the running interpreter's environment,
``SHIOL_HOME`` (and the store and archive folders, the only writable paths), the settings file and the
dedicated user. It goes to stdout or to a file named on the command line, never silently to /etc.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import click

from shiol_lib.cli import package_version
from shiol_lib.cli.common import fail
from shiol_lib.errors import ConfigError, ShiolError
from shiol_lib.settings import Settings

TEMPLATE = "shiol-scheduler.service.in"
DEFAULT_ENV_FILE = Path("/etc/shiol/shiol.env")
DEFAULT_USER = "shiol"
# Scheduler.stop interrupts the jobs still running after the grace one after another and waits this
# long for each before killing it: the stop timeout covers the grace, every job's wait and a margin.
INTERRUPT_WAIT_S = 30
STOP_MARGIN_S = 30
HOME_DIRECTORIES = (Path("/home"), Path("/root"), Path("/run/user"))  # what ProtectHome= hides
TEMPORARY_DIRECTORIES = (Path("/tmp"), Path("/var/tmp"))  # what PrivateTmp= hides
_UNIT_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+@,:=-]*$")  # nothing a unit file would quote or expand
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def console_script() -> Path:
    """The ``shiol`` script of the running interpreter's environment (a virtualenv's ``bin/shiol``)."""
    script = Path(sysconfig.get_path("scripts")) / "shiol"
    if not (script.is_file() and os.access(script, os.X_OK)):
        raise ConfigError(
            f"{script} is missing or not executable: install the workbench into this environment "
            f"({sys.prefix}) with pip, then run `shiol service install` from it"
        )
    return script


@dataclass(frozen=True)
class Installation:
    """What the service runs (the ``shiol`` console script) and only reads (its environment and code)."""

    executable: Path
    code: tuple[Path, ...]


def this_installation(settings: Settings) -> Installation:
    """The running interpreter's installation: its ``shiol`` script, environment, package and notebooks."""
    executable = console_script()
    package_root = Path(__file__).resolve().parents[2]  # the checkout (schedules.py) or site-packages
    return Installation(
        executable,
        (
            executable,
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(sys.executable).resolve(),
            package_root,
            settings.notebooks_dir,
        ),
    )


def render_unit(
    settings: Settings,
    *,
    user: str = DEFAULT_USER,
    env_file: Path = DEFAULT_ENV_FILE,
    installation: Installation | None = None,
) -> str:
    """The systemd unit of ``installation`` (default: this one): ``shiol schedule run`` as ``user``.

    Settings come from ``env_file``. Rendering runs nothing: any installation can be checked from anywhere.
    """
    from shiol_lib.jobs.catalog import scheduled_jobs
    from shiol_lib.scheduling.scheduler import STOP_GRACE_S

    if not _USER_NAME.match(user):
        raise ConfigError(f"--user {user!r} is not a system user name (lower case letters, digits, '_' and '-')")
    installation = installation or this_installation(settings)
    executable = installation.executable
    env_file = Path(env_file).expanduser().absolute()
    writable = _outermost([settings.home, settings.db_path.parent, settings.snapshot_path.parent, settings.runs_dir])
    readable = list(installation.code)
    for path in (executable, env_file, *writable):
        _check_unit_path(path)
    for path in (*writable, *readable):
        if _under(path, TEMPORARY_DIRECTORIES):
            raise ConfigError(
                f"{path} lies in a temporary folder, which the service's private /tmp hides (and "
                "tmp cleaning empties): install the workbench and its home elsewhere, e.g. /srv/shiol"
            )
    protect_home, reason = _protect_home(writable, readable)
    stop_timeout = int(STOP_GRACE_S) + INTERRUPT_WAIT_S * len(scheduled_jobs()) + STOP_MARGIN_S
    template = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    return Template(template).substitute(
        version=package_version(),
        user=user,
        home=settings.home,
        env_file=env_file,
        executable=executable,
        grace_s=f"{STOP_GRACE_S:g}",
        interrupt_wait_s=INTERRUPT_WAIT_S,
        timeout_stop_s=stop_timeout,
        read_write_paths=" ".join(str(p) for p in writable),
        protect_home=protect_home,
        protect_home_reason=reason,
    )


def write_unit(path: Path, text: str, *, force: bool = False) -> Path:
    """Write the unit to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise ConfigError(f"the folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise ConfigError(f"could not write {path}: {err.strerror or err}") from err
    return path


def _protect_home(writable: list[Path], readable: list[Path]) -> tuple[str, str]:
    """``ProtectHome=yes`` unless the service needs something under /home, /root or /run/user."""
    for verb, paths in (("writes", writable), ("reads", readable)):
        needed = [p for p in paths if _under(p, HOME_DIRECTORIES)]
        if needed:
            return "read-only", f"read-only, not yes: the scheduler {verb} {needed[0]}, under a home directory"
    return "yes", "yes: nothing the scheduler needs lies under /home, /root or /run/user"


def _under(path: Path, tops: tuple[Path, ...]) -> bool:
    path = Path(os.path.abspath(path))
    return any(path == top or top in path.parents for top in tops)


def _outermost(paths: list[Path]) -> list[Path]:
    """The paths, resolved, without duplicates or any path inside another one of them, in order."""
    resolved = list(dict.fromkeys(Path(os.path.abspath(p)) for p in paths))
    return [p for p in resolved if not any(other in p.parents for other in resolved)]


def _check_unit_path(path: Path) -> None:
    if not _UNIT_SAFE_PATH.match(str(path)):
        raise ConfigError(
            f"{path} has a space or a character a systemd unit would quote or expand "
            "(%, $, quotes, backslash); move the installation to a plain path"
        )


@click.group("service")
def service_group() -> None:
    """Run the scheduler as a system service (systemd)."""


@service_group.command("install")
@click.option("--print", "to_stdout", is_flag=True, help="Write the unit to stdout.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the unit to this file (atomically), e.g. /etc/systemd/system/shiol-scheduler.service.",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_ENV_FILE,
    show_default=True,
    help="The settings file the unit reads (SHIOL_* lines, see .env.example).",
)
@click.option("--user", default=DEFAULT_USER, show_default=True, help="The dedicated user the scheduler runs as.")
@click.option("--force", is_flag=True, help="Replace an existing --output file.")
@click.pass_obj
def install_command(
    settings: Settings, to_stdout: bool, output: Path | None, env_file: Path, user: str, force: bool
) -> None:
    """Write the systemd unit of this installation's scheduler: --print, or --output FILE."""
    if to_stdout == (output is not None):
        raise click.UsageError("give exactly one of --print or --output FILE")
    try:
        text = render_unit(settings, user=user, env_file=env_file)
        if output is None:  # --print
            click.echo(text, nl=False)
            return
        written = write_unit(output, text, force=force)
    except ShiolError as err:
        fail(err)
    click.echo(f"wrote {written}; then: systemctl daemon-reload && systemctl enable --now {written.stem}")
