"""The append-only, hash-chained ledger of finished runs (``runs/ledger.jsonl``).

Each line holds a run's id, job, status and the SHA-256 of its manifest, plus the hash of the line
before it and its own hash: editing, deleting or reordering any line, or editing an archived
manifest, breaks the chain, and :func:`verify_ledger` says where.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shiol_lib.errors import ArchiveError
from shiol_lib.pipeline.archive import MANIFEST, find_run_dir, sha256_file

LEDGER = "ledger.jsonl"
GENESIS = "0" * 64


@dataclass(frozen=True)
class LedgerProblem:
    """One place where the ledger or the archive does not check out."""

    line: int
    run_id: str | None
    problem: str


@contextmanager
def _locked(runs_dir: Path) -> Iterator[None]:
    with open(Path(runs_dir) / ".ledger.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_ledger(runs_dir: Path) -> list[dict[str, Any]]:
    """All ledger entries, oldest first."""
    path = Path(runs_dir) / LEDGER
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ArchiveError(f"ledger line {number} is not JSON ({err.msg}): the ledger was altered") from err
    return entries


def append_entry(runs_dir: Path, *, run_id: str, job: str, status: str, manifest_path: Path) -> dict[str, Any]:
    """Append one run to the ledger under a file lock; returns the entry written."""
    path = Path(runs_dir) / LEDGER
    with _locked(runs_dir):
        entries = read_ledger(runs_dir)
        entry = {
            "seq": len(entries) + 1,
            "run_id": run_id,
            "job": job,
            "status": status,
            "recorded_at": datetime.now(UTC).isoformat(),
            "manifest_sha256": sha256_file(manifest_path),
            "prev_hash": entries[-1]["hash"] if entries else GENESIS,
        }
        entry["hash"] = _entry_hash(entry)
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise ArchiveError(f"could not append to the ledger {path}: {err.strerror}") from err
    return entry


def verify_ledger(runs_dir: Path) -> list[LedgerProblem]:
    """Check the hash chain and every manifest it names; an empty list means all is intact."""
    problems = []
    previous = GENESIS
    for number, entry in enumerate(read_ledger(runs_dir), start=1):
        run_id = entry.get("run_id")
        if entry.get("seq") != number:
            problems.append(LedgerProblem(number, run_id, f"sequence {entry.get('seq')} where {number} was expected"))
        if entry.get("prev_hash") != previous:
            problems.append(LedgerProblem(number, run_id,
                                          "does not chain to the line before (line removed or reordered)"))
        if _entry_hash(entry) != entry.get("hash"):
            problems.append(LedgerProblem(number, run_id, "content does not match its hash (line edited)"))
        previous = entry.get("hash", "")
        try:
            manifest = find_run_dir(runs_dir, str(run_id)) / MANIFEST
            if sha256_file(manifest) != entry.get("manifest_sha256"):
                problems.append(LedgerProblem(number, run_id, f"manifest {manifest} was changed after the run"))
        except (ArchiveError, OSError) as err:
            problems.append(LedgerProblem(number, run_id, f"manifest missing: {err}"))
    return problems
