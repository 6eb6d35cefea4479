"""Retention: ``shiol runs prune`` removes old runs' heavy files on purpose, and says so in the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shiol_lib.archive import ledger
from shiol_lib.archive.folders import HEAVY_SUFFIXES, PRUNED, iter_manifests, write_atomic
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import ArchiveError


def prune_runs(runs_dir: Path, *, keep_days: int, now: datetime | None = None, key: str | None = None) -> list[Path]:
    """Delete the heavy files (notebooks, HTML, logs) of runs started more than ``keep_days`` ago.

    Manifests are kept; each pruned run gets a ``prune`` ledger entry naming the files removed (so
    ``shiol runs verify`` knows they are gone on purpose) and a ``PRUNED`` marker. A run still
    ``running`` or not yet in the ledger is never pruned. The caller anchors the new ledger head in
    the store.

    Returns:
        The pruned run folders.

    Raises:
        ArchiveError: ``keep_days`` is negative, or the ledger or a folder cannot be written.
    """
    if keep_days < 0:
        raise ArchiveError(f"--keep-days {keep_days} must be 0 or more")
    now = now or datetime.now(UTC)
    in_ledger = {e.get("run_id") for e in ledger.read_ledger(runs_dir) if e.get("kind", "run") == "run"}
    pruned = []
    for directory, manifest in iter_manifests(runs_dir):
        if (now - manifest.started_at).days < keep_days or manifest.status == RunStatus.RUNNING:
            continue
        if manifest.run_id not in in_ledger:
            continue
        heavy = [p for p in directory.iterdir() if p.suffix in HEAVY_SUFFIXES and p.name != "index.html"]
        if not heavy:
            continue
        ledger.append_prune(runs_dir, run_id=manifest.run_id, files=[p.name for p in heavy], key=key)
        for path in heavy:
            path.unlink()
        write_atomic(directory / PRUNED, f"heavy files removed {now.isoformat()}\n".encode())
        pruned.append(directory)
    return pruned
