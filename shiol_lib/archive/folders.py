"""The run archive: ``runs/<job>/<YYYY-MM-DD>/<run_id>/``.

Each run folder holds each step's executed notebook, its HTML and one ``manifest.json``. Every file is
written to a temporary name and renamed, so a crash never leaves a half-written file, and the manifest
says ``running`` until the run has really ended.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import platform
import re
import secrets
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from shiol_lib.archive.manifest import Manifest, ManifestError
from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.errors import ArchiveError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PRUNED = "PRUNED"  # the marker `shiol runs prune` leaves in a run folder whose heavy files it removed
RUN_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
KEY_PACKAGES = (
    "shiol-workbench",
    "papermill",
    "nbconvert",
    "pandas",
    "numpy",
    "duckdb",
    "xgboost-cpu",
    "scikit-learn",
    "scipy",
    "matplotlib",
    "rocketry",
    "ipykernel",
)
HEAVY_SUFFIXES = (".ipynb", ".html", ".log")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261128T151500Z-a1b2c3``."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """Refuse anything that is not a run id (path separators, dots, other shapes)."""
    if not RUN_ID_PATTERN.match(run_id):
        raise ArchiveError(
            f"{run_id!r} is not a run id (expected like 20261128T151500Z-a1b2c3); 'shiol runs list' shows them"
        )
    return run_id


def run_dir(runs_dir: Path, job: str, run_id: str, started_at: datetime) -> Path:
    """Where a run's files live: ``<runs>/<job>/<YYYY-MM-DD in New York>/<run_id>``."""
    check_run_id(run_id)
    return Path(runs_dir) / job / f"{started_at.astimezone(NEW_YORK):%Y-%m-%d}" / run_id


def ensure_writable(path: Path) -> Path:
    """Create ``path`` and prove a file can be written there, or raise :class:`ArchiveError`."""
    probe = path / f".write-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):  # a full disk creates the file, then refuses its bytes
            probe.unlink(missing_ok=True)
        remedy = (
            "free space on that device"
            if err.errno in (errno.ENOSPC, errno.EDQUOT)
            else "fix its permissions or set SHIOL_RUNS_DIR"
        )
        raise ArchiveError(f"the runs directory {path} is not writable ({err.strerror}); {remedy}") from err
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename; clean up on failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        reason = "the disk is full" if err.errno == errno.ENOSPC else err.strerror
        raise ArchiveError(f"could not write {path}: {reason}") from err


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (sorted keys, so equal content hashes equal)."""
    path = directory / MANIFEST
    write_atomic(path, manifest.to_json().encode("utf-8"))
    return path


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a run directory; :class:`ArchiveError` when it is missing or not a manifest."""
    path = Path(directory) / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise ArchiveError(f"no manifest at {path}") from err
    except OSError as err:
        raise ArchiveError(f"the manifest {path} cannot be read ({err.strerror})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(
            f"the manifest {path} is not UTF-8 text (byte {err.start}); the archive was altered"
        ) from err
    return Manifest.from_json(text, where=f"the manifest {path}")


def find_run_dir(runs_dir: Path, run_id: str) -> Path:
    """The archive folder of ``run_id``: first under the day its id names (New York), then anywhere."""
    check_run_id(run_id)
    started = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    day = f"{started.astimezone(NEW_YORK):%Y-%m-%d}"
    matches = sorted(Path(runs_dir).glob(f"*/{day}/{run_id}")) or sorted(Path(runs_dir).glob(f"*/*/{run_id}"))
    if not matches:
        raise ArchiveError(f"run {run_id} is not in the archive {runs_dir}; 'shiol runs list' shows the runs")
    return matches[0]


def iter_manifests(runs_dir: Path, *, month: str | None = None) -> list[tuple[Path, Manifest]]:
    """Every readable manifest in the archive (of one ``YYYY-MM`` of day folders) with its folder, newest first.

    A manifest that cannot be read is skipped with a warning naming it (``shiol runs verify`` reports
    it): one damaged run never stops the index, pruning or the next run.
    """
    found = []
    for path in Path(runs_dir).glob(f"*/{month + '-*' if month else '*'}/*/{MANIFEST}"):
        try:
            found.append((path.parent, read_manifest(path.parent)))
        except ArchiveError as err:
            log.warning("skipping an unreadable run folder: %s", err)
    return sorted(found, key=lambda item: (item[1].started_at, item[1].run_id), reverse=True)


def code_version(repo: Path) -> dict[str, Any]:
    """The git commit of ``repo`` and whether its tree was dirty (None outside a checkout)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
    """Python and key package versions."""
    versions: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": versions}
