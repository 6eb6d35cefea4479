"""The workbench's exceptions: one base, one class per kind of failure a caller may handle.

A class may carry ``error_class``: how a run step that raised it ends (the value of an
:class:`~shiol_lib.domain.runs.ErrorClass`, written here as its plain string because this module
imports nothing of the workbench). A step kernel reports it through its outcome channel
(:mod:`shiol_lib.execution.channel`), so a subclass or a renamed class keeps its meaning; ``None``
(the default) is an ordinary cell error.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

DISK_FULL = "disk_full"  # ErrorClass.DISK_FULL, as a plain string (see the module's docstring)
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_NO_SPACE_TEXT = "No space left on device"


class ShiolError(Exception):
    """Base of every error the workbench raises on purpose."""

    error_class: str | None = None


class ConfigError(ShiolError):
    """A setting (environment variable) has a value the workbench cannot use."""


@dataclass(frozen=True)
class JobsFileProblem:
    """One problem of a jobs file: the file, the job (None: the whole file), the field and the reason."""

    file: str
    job: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = [self.file] + ([f"job {self.job!r}"] if self.job else []) + ([self.field] if self.field else [])
        return f"{': '.join(where)}: {self.reason}"


class JobsFileError(ConfigError):
    """A jobs file (``jobs.toml``) cannot be used; ``problems`` lists every problem found, one per field."""

    def __init__(self, problems: list[JobsFileProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems) or "invalid jobs file")
        self.problems = list(problems)


class SecretMissingError(ConfigError):
    """A secret a job names (an environment variable) is not set, or empty, where the job runs."""

    def __init__(self, message: str, *, variable: str, job: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
        self.job = job


class EnvironmentDriftError(ShiolError):
    """A job with the strict environment policy would run on other packages than its last successful run."""

    error_class = "configuration"  # ErrorClass.CONFIGURATION, as a plain string (see the module's docstring)


class ClusterError(ConfigError):
    """A Dask cluster address that cannot be used: unreachable, not a scheduler, or malformed."""

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message)
        self.address = address


class UnknownMatrixError(ShiolError):
    """A date lies outside every Powerball game matrix the workbench knows."""


class SourceError(ShiolError):
    """A draw source could not be reached or answered with something unusable."""


class FetchError(SourceError):
    """An HTTP fetch failed after its retries (connection, timeout or error status)."""

    error_class = "fetch"

    def __init__(self, message: str, *, url: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.retry_after = retry_after


class ResponseTooLargeError(FetchError):
    """A response body exceeded the size cap (``SHIOL_HTTP_MAX_BYTES``); it was cut off while streaming."""

    def __init__(self, message: str, *, url: str, limit: int) -> None:
        super().__init__(message, url=url)
        self.limit = limit


class MalformedBodyError(SourceError):
    """A source answered with a body that is not its format (not JSON, truncated, too deep, null, wrong shape)."""


class RecordError(SourceError):
    """One record of a source fails a parsing or validation rule; the parsers turn it into a rejection."""


class StoreError(ShiolError):
    """The DuckDB store could not be opened, migrated or written."""


class StoreMissingError(StoreError):
    """A command that only reads found no store file (it never creates one)."""


class StoreLockError(StoreError):
    """Another process holds the DuckDB file lock and did not release it in time."""

    def __init__(self, message: str, *, path: str, holder: str | None) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


class SnapshotStaleError(StoreError):
    """A write was committed, but the reader snapshot could not be republished: it is stale."""


class UpdateError(ShiolError):
    """A data update rejected records or met conflicts; carries the full report."""

    error_class = "validation"

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


class DrawFrameError(ShiolError):
    """A draws or tickets DataFrame handed to the analysis is malformed (missing column, NaN, duplicate...)."""


class InsufficientHistoryError(ShiolError):
    """Too few earlier drawings (in the target's matrix era) for what was asked."""

    def __init__(self, message: str, *, available: int, needed: int) -> None:
        super().__init__(message)
        self.available = available
        self.needed = needed


class ArtefactError(ShiolError):
    """A saved model or weights artefact is missing, unreadable or of an unknown format."""


class ArtefactMismatchError(ArtefactError):
    """An artefact was built from other draws (data hash), another era, or after its target."""


class TicketRequestError(ShiolError):
    """A ticket request cannot be met (count out of range, probabilities unusable)."""


class RunnerError(ShiolError):
    """A notebook could not be run as asked (missing notebook, bad parameters, no parameters cell)."""


class ParameterError(RunnerError):
    """Parameters do not match what the notebook declares; ``problems`` lists each mismatch."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


class ArchiveError(ShiolError):
    """The run archive could not be written or read (permissions, disk full, bad run id)."""


class JobBusyError(ShiolError):
    """A job is already running in another process; this start was refused (and recorded so)."""


class DrawNotPublishedError(ShiolError):
    """The drawing a pipeline run is for has no published result yet: the run ends ``waiting``."""

    error_class = "waiting"


class NoSourceAnsweredError(FetchError):
    """A data update asked every network source and none answered (the bundled snapshot is not a source).

    A fetch failure of the whole update: the job's run ends ``failed`` (error class ``fetch``) and is
    retried and alerted like any other failure.
    """

    def __init__(self, message: str, *, attempts: list[str]) -> None:
        super().__init__(message, url="")
        self.attempts = attempts


def no_space_left(err: BaseException | None) -> OSError | BaseException | None:
    """The error in ``err``'s chain (causes and contexts) that says the disk is full, else None.

    An ``OSError`` with ``ENOSPC`` or ``EDQUOT``, or an error whose text says so (DuckDB's IO errors).
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _NO_SPACE_ERRNOS:
            return err
        if _NO_SPACE_TEXT in str(err):
            return err
        err = err.__cause__ or err.__context__
    return None


def disk_full_message(err: BaseException, *, fallback: Path) -> str:
    """What a run that met a full disk says: the path that could not be written, the room left, what to free.

    Args:
        err: The error whose chain holds the disk-full error (see :func:`no_space_left`).
        fallback: The path to name when that error names none (the store, the archive).
    """
    full = no_space_left(err)
    named = (full.filename2 or full.filename) if isinstance(full, OSError) else None
    path = Path(named) if named else Path(fallback)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{shutil.disk_usage(probe).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return (
        f"disk full: no space left on the device holding {path} ({free}); free space on that device "
        "(files you do not need there, old runs' notebooks and HTML with 'shiol runs prune --keep-days N') "
        "and run the job again"
    )
