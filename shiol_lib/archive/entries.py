"""The ledger's entries against the files: each run's manifest and artefacts, by one walk of the archive.

What a run entry of the ledger accounts for: its run folder (found by one walk of ``<job>/<day>/``, never
a glob per run), its ``manifest.json`` (the hash the entry recorded), every artefact its manifest
recorded (unless a ``prune`` entry names it) and nothing else in the folder but the manifest, the prune
marker and the run's page. Hashes come from :class:`~shiol_lib.archive.verify_state.FileHashes` (a file
whose identity is unchanged since the last verification is not hashed again with ``--since-last``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiol_lib.archive.coverage import RERUNS
from shiol_lib.archive.folders import HEAVY_SUFFIXES, MANIFEST, PRUNED, RUN_ID_PATTERN, read_manifest
from shiol_lib.archive.hashing import sha256_file
from shiol_lib.archive.ledger import LedgerLine, LedgerProblem
from shiol_lib.archive.pages import CHUNK_DIR
from shiol_lib.archive.verify_state import FileHashes
from shiol_lib.errors import ArchiveError

# Files of a run folder that are not artefacts: the manifest (hashed by the ledger), the prune marker
# and the run page (derived from the manifest, rewritten with the index).
NOT_ARTEFACTS = frozenset({MANIFEST, PRUNED, "index.html"})


@dataclass(frozen=True)
class Facts:
    """What the checks need of a verified manifest (kept in the verify state by the manifest's hash)."""

    status: str
    schema: int
    artefacts: dict[str, str]
    outputs: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """The facts as the verify state keeps them."""
        return {"status": self.status, "schema": self.schema, "artefacts": self.artefacts, "outputs": self.outputs}


def _facts(folder: Path, digest: str | None, hashes: FileHashes) -> Facts:
    """The manifest's facts: from the state when its hash was recorded there, else read (ArchiveError)."""
    known = hashes.manifests.get(digest) if digest else None
    if isinstance(known, dict):
        try:
            return Facts(str(known["status"]), int(known["schema"]), dict(known["artefacts"]), dict(known["outputs"]))
        except (KeyError, TypeError, ValueError):
            pass
    manifest = read_manifest(folder)
    return Facts(str(manifest.status), manifest.schema, dict(manifest.artefacts), dict(manifest.outputs))


def run_folders(runs_dir: Path) -> dict[str, list[Path]]:
    """Every ``<job>/<day>/<run_id>`` folder by run id, from one walk (not one glob per run)."""
    found: dict[str, list[Path]] = {}
    for job in _subdirs(runs_dir):
        if job.name in (RERUNS, CHUNK_DIR):
            continue
        for day in _subdirs(job):
            for run in _subdirs(day):
                found.setdefault(run.name, []).append(run)
    return found


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


class EntryCheck:
    """Walks the run and prune entries: manifests, artefacts and files nobody recorded."""

    def __init__(self, runs_dir: Path, lines: list[LedgerLine], hashes: FileHashes) -> None:
        self.problems: list[LedgerProblem] = []
        self.files = 0
        self.folders: dict[Path, str] = {}  # the run folder each entry was checked against
        self.manifests: dict[str, Facts] = {}
        self.hashes = hashes
        last: dict[str, tuple[int, dict]] = {}
        pruned: dict[str, set[str]] = {}
        for line in lines:
            entry = line.entry
            if entry is None or not isinstance(entry.get("run_id"), str):
                continue
            kind = entry.get("kind", "run")
            if kind == "prune":
                names = entry.get("pruned")
                pruned.setdefault(entry["run_id"], set()).update(n for n in names or [] if isinstance(n, str))
            elif kind == "run":
                last[entry["run_id"]] = (line.number, entry)
            else:
                self.problems.append(LedgerProblem(line.number, entry["run_id"], f"unknown entry kind {kind!r}"))
        self.ledger_runs = set(last)
        folders = run_folders(runs_dir)
        for run_id, (number, entry) in sorted(last.items()):
            self._check_run(folders.get(run_id, []), number, run_id, entry, pruned.get(run_id, set()))

    def _problem(self, line: int, run_id: str, text: str) -> None:
        self.problems.append(LedgerProblem(line, run_id, text))

    def _check_run(self, folders: list[Path], line: int, run_id: str, entry: dict, pruned: set[str]) -> None:
        if not RUN_ID_PATTERN.match(run_id):
            self._problem(line, run_id, "names something that is not a run id")
            return
        if not folders:
            self._problem(line, run_id, "its run folder is missing from the archive")
            return
        folder = folders[0]
        self.folders[folder] = run_id
        try:
            names = set(os.listdir(folder))  # one listing per run: what is there, and what is not recorded
        except OSError:
            names = set()
        manifest_path = folder / MANIFEST
        digest = self.hashes.sha256(manifest_path) if MANIFEST in names else None
        if digest is None and not manifest_path.is_file():
            self._problem(line, run_id, f"its manifest {manifest_path} is missing")
            return
        matches = digest == entry.get("manifest_sha256")
        if not matches:
            self._problem(line, run_id, f"manifest {manifest_path} was changed after the run")
        try:
            manifest = _facts(folder, digest if matches else None, self.hashes)
        except ArchiveError as err:
            self._problem(line, run_id, str(err))
            return
        if matches and digest:
            self.hashes.manifests[digest] = manifest.as_dict()
        self.manifests[run_id] = manifest
        base = os.path.join(os.fspath(folder), "")
        for name, expected in sorted(manifest.artefacts.items()):
            if name in pruned:
                continue
            self.files += 1
            found = self.hashes.sha256(base + name) if name in names else None
            if found is None and not (folder / name).is_file():
                self._problem(line, run_id, f"file {name} is missing (not recorded as pruned)")
            elif found != expected:
                self._problem(
                    line, run_id, f"file {name} was changed after the run (its sha256 differs from the manifest's)"
                )
        if manifest.schema < 2:
            return  # schema 1 recorded no artefact hashes: nothing more to compare
        for name in sorted(names - NOT_ARTEFACTS - set(manifest.artefacts)):
            self._problem(line, run_id, f"file {name} is in the run folder but not in its manifest")


def _sha256(path: Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read (the caller reports that as a difference)."""
    try:
        return sha256_file(path)
    except ArchiveError:
        return None


def artefact_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every artefact (``.ipynb``, ``.html``, ``.log``) in a run folder, by file name."""
    hashes = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix in HEAVY_SUFFIXES and path.name not in NOT_ARTEFACTS:
            digest = _sha256(path)
            if digest is not None:
                hashes[path.name] = digest
    return hashes
