"""Retention: ``shiol runs prune`` removes old runs' heavy files on purpose, and says so in the ledger.

What is removed: a run's executed notebooks, HTML reports and logs, once the run is older than the
``keep_days`` of its job (or the default given). What is kept, always: its ``manifest.json`` (with the
hashes of the files removed), its ledger entry and its page, so ``shiol runs verify`` still checks the
run's record and knows, from the run's ``prune`` entry, which files are gone on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from shiol_lib.archive import ledger
from shiol_lib.archive.folders import HEAVY_SUFFIXES, PRUNED, iter_manifests, write_atomic
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import ArchiveError


def prune_runs(
    runs_dir: Path,
    *,
    keep_days: int | None,
    per_job: Mapping[str, int] | None = None,
    now: datetime | None = None,
    key: str | None = None,
) -> list[Path]:
    """Delete the heavy files (notebooks, HTML, logs) of runs started more than their job's days ago.

    ``per_job`` gives a job's own ``keep_days``; ``keep_days`` is the default for the other jobs (None:
    their runs are kept). Manifests are kept; each pruned run gets a ``prune`` ledger entry naming the
    files removed (all entries in one append, before any file is removed, so ``shiol runs verify``
    knows they are gone on purpose) and a ``PRUNED`` marker. A run still ``running`` or not yet in the
    ledger is never pruned. The caller anchors the new ledger head in the store.

    Returns:
        The pruned run folders.

    Raises:
        ArchiveError: a number of days is negative, or the ledger or a folder cannot be written.
    """
    days = dict(per_job or {})
    for job, value in [("--keep-days", keep_days), *days.items()]:
        if value is not None and value < 0:
            raise ArchiveError(f"keep_days {value} of {job} must be 0 or more")
    now = now or datetime.now(UTC)
    in_ledger = {e.get("run_id") for e in ledger.read_ledger(runs_dir) if e.get("kind", "run") == "run"}
    chosen: dict[str, tuple[Path, list[Path]]] = {}
    for directory, manifest in iter_manifests(runs_dir):
        keep = days.get(manifest.job, keep_days)
        if keep is None or (now - manifest.started_at).days < keep or manifest.status == RunStatus.RUNNING:
            continue
        if manifest.run_id not in in_ledger:
            continue
        heavy = sorted(p for p in directory.iterdir() if p.suffix in HEAVY_SUFFIXES and p.name != "index.html")
        if heavy:
            chosen[manifest.run_id] = (directory, heavy)
    if not chosen:
        return []
    ledger.append_prunes(runs_dir, {run_id: [p.name for p in heavy] for run_id, (_, heavy) in chosen.items()}, key=key)
    marker = f"heavy files removed {now.isoformat()}\n".encode()
    for directory, heavy in chosen.values():
        for path in heavy:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise ArchiveError(f"could not remove {path}: {err.strerror}") from err
        write_atomic(directory / PRUNED, marker)
    return [directory for directory, _ in chosen.values()]
