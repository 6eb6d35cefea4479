"""What the ``shiol`` commands share: the error-to-exit-code mapping (:class:`ExitCode`), run ids, opening the store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from shiol_lib.domain.runs import SCHEDULED_TRIGGERS, ExitCode, MissedKind, Trigger
from shiol_lib.errors import (
    ArchiveError,
    ConfigError,
    JobBusyError,
    ParameterError,
    RunnerError,
    ShiolError,
    StoreError,
    StoreMissingError,
)
from shiol_lib.jobs.catalog import scheduled_job_names
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    from shiol_lib.store import Store

# The commands import the pipeline machinery (papermill, nbconvert, pandas) when they run, not when
# `shiol` starts: `shiol status` and `shiol update-data` stay quick.
# The jobs `shiol run` and `shiol runs missed --job` take: the catalog's scheduled jobs.
JOB_NAMES = scheduled_job_names()
MISSED_KINDS = tuple(kind.value for kind in MissedKind)
# The triggers `shiol run --trigger` takes: a person's run, or one of the planner's reasons.
TRIGGERS = tuple(trigger.value for trigger in (Trigger.MANUAL, *SCHEDULED_TRIGGERS))


class RunIdType(click.ParamType):
    """A run id argument: a malformed one is a usage error (exit 2), not an archive error."""

    name = "RUN_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """Return the run id, or fail the command with the reason it is not one."""
        from shiol_lib.archive.folders import check_run_id

        try:
            return check_run_id(str(value))
        except ArchiveError as err:
            self.fail(str(err), param, ctx)


RUN_ID = RunIdType()


def fail(err: ShiolError) -> NoReturn:
    """Print the error and exit with the code of its kind."""
    click.echo(f"error: {err}", err=True)
    if isinstance(err, (ConfigError, ParameterError, RunnerError)):
        sys.exit(ExitCode.USAGE)
    if isinstance(err, StoreError):
        sys.exit(ExitCode.STORE)
    if isinstance(err, ArchiveError):
        sys.exit(ExitCode.ARCHIVE)
    if isinstance(err, JobBusyError):
        sys.exit(ExitCode.BUSY)
    sys.exit(ExitCode.ERROR)


def require_store(settings: Settings) -> None:
    """Refuse (exit 5) when there is no store: commands that only read never create one."""
    if not settings.db_path.exists():
        raise StoreMissingError(f"no store at {settings.db_path}; run `shiol update-data` or set SHIOL_HOME")


def open_existing_store(settings: Settings) -> Store:
    """The store, which must exist already (:func:`require_store`)."""
    from shiol_lib.store import open_store

    require_store(settings)
    return open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)


def open_or_create_store(settings: Settings) -> Store:
    """The store, created (and migrated) when missing, saying where on stderr: the first write makes it."""
    from shiol_lib.store import open_store

    existed = settings.db_path.exists()
    store = open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=settings.lock_timeout_s)
    if not existed:
        click.echo(f"created the store at {settings.db_path} (SHIOL_HOME {settings.home})", err=True)
    return store


def parameter_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The repeatable ``-p NAME VALUE`` option (into ``parameters``) of the commands that run or add a job."""
    return click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE", help=help_text)
