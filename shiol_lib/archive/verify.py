"""``shiol runs verify``: cross-check the ledger, the archive's files and the store's anchor.

What it guarantees: every run the store closed has its ledger entry and manifest; every ledger entry
chains to the one before, matches its hash (and, with ``SHIOL_LEDGER_KEY``, its signature); every
manifest matches the hash its entry recorded and every artefact (``.ipynb``, ``.html``, ``.log``) the
hash its manifest recorded, unless a ``prune`` entry says it was removed; no entry is missing at the
tail or appended past the head the store anchored; nothing sits in the archive that the ledger does
not know. What it cannot do: someone who holds the key *and* can write both ``runs/`` and the store
can rewrite history consistently; without a key, someone who can write both can too. Runs archived
before manifest schema 2 recorded no artefact hashes: their files are checked by name only.

Every check reports instead of raising: a damaged file is a problem in the list, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shiol_lib.archive.folders import HEAVY_SUFFIXES, MANIFEST, PRUNED, RUN_ID_PATTERN, read_manifest
from shiol_lib.archive.hashing import sha256_file
from shiol_lib.archive.ledger import Head, LedgerLine, LedgerProblem, check_chain, read_lines
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import ArchiveError

# Files of a run folder that are not artefacts: the manifest (hashed by the ledger), the prune marker
# and the run page (derived from the manifest, rewritten with the index).
NOT_ARTEFACTS = frozenset({MANIFEST, PRUNED, "index.html"})
RERUNS = "reruns"  # runs/reruns/<run_id>/...: outputs of re-executed steps, outside the archive proper


@dataclass
class Verification:
    """What a verification looked at and what it found."""

    problems: list[LedgerProblem] = field(default_factory=list)
    entries: int = 0
    runs: int = 0
    files: int = 0
    signed: bool = False
    anchored: bool = False

    @property
    def intact(self) -> bool:
        """True when nothing was found."""
        return not self.problems


def verify_archive(runs_dir: Path, *, anchor: tuple[int, str] | None, runs: dict[str, str],
                   key: str | None = None) -> Verification:
    """Check the ledger chain, its entries' files, the store ``anchor`` and the store's ``runs``.

    ``runs`` maps every archived run id the store knows to its status (``running`` ones are allowed to
    have no ledger entry yet); ``anchor`` is the (seq, hash) the store recorded when a run last closed.
    """
    runs_dir = Path(runs_dir)
    try:
        lines = read_lines(runs_dir)
    except ArchiveError as err:
        return Verification([LedgerProblem(None, None, str(err))])
    result = Verification(entries=len(lines), signed=bool(key), anchored=anchor is not None)
    result.problems += check_chain(lines, key=key)
    result.problems += _check_anchor(lines, anchor)
    checked = _EntryCheck(runs_dir, lines)
    result.problems += checked.problems
    result.runs, result.files = len(checked.ledger_runs), checked.files
    for run_id, status in sorted(runs.items()):
        if status != RunStatus.RUNNING and run_id not in checked.ledger_runs:
            result.problems.append(LedgerProblem(None, run_id, f"the store closed this run ({status}) but the "
                                                               "ledger has no entry for it (entry removed?)"))
    result.problems += _unknown_folders(runs_dir, checked.ledger_runs, runs)
    return result


def verify_ledger(runs_dir: Path, *, key: str | None = None) -> list[LedgerProblem]:
    """The chain, and every manifest and artefact its entries name (no store cross-check).

    :func:`verify_archive` adds the store anchor, the store's runs and the walk for unknown folders.
    """
    lines = read_lines(runs_dir)
    return check_chain(lines, key=key) + _EntryCheck(Path(runs_dir), lines).problems


def _check_anchor(lines: list[LedgerLine], anchor: tuple[int, str] | None) -> list[LedgerProblem]:
    if anchor is None:
        if lines:
            return [LedgerProblem(None, None, "the store holds no ledger anchor; it is written when a run closes "
                                              "(a store restored without its anchor, or one that predates it)")]
        return []
    head = Head(*anchor)
    if head.seq > len(lines):
        return [LedgerProblem(None, None, f"the ledger ends at entry {len(lines)} but the store anchored entry "
                                          f"{head.seq} ({head.hash[:12]}...): entries were removed from the tail")]
    problems = []
    if lines[head.seq - 1].chain_hash != head.hash:
        problems.append(LedgerProblem(head.seq, None, f"entry {head.seq} is not the one the store anchored "
                                                      f"({head.hash[:12]}...): the ledger was rewritten"))
    for line in lines[head.seq:]:
        run_id = line.entry.get("run_id") if line.entry else None
        problems.append(LedgerProblem(line.number, run_id if isinstance(run_id, str) else None,
                                      f"entry {line.number} is past the head the store anchored (entry {head.seq}): "
                                      "appended outside a run's close (forged), or a crash between ledger and store"))
    return problems


class _EntryCheck:
    """Walks the run and prune entries: manifests, artefacts and files nobody recorded."""

    def __init__(self, runs_dir: Path, lines: list[LedgerLine]) -> None:
        self.problems: list[LedgerProblem] = []
        self.files = 0
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
        for run_id, (number, entry) in sorted(last.items()):
            self._check_run(runs_dir, number, run_id, entry, pruned.get(run_id, set()))

    def _problem(self, line: int, run_id: str, text: str) -> None:
        self.problems.append(LedgerProblem(line, run_id, text))

    def _check_run(self, runs_dir: Path, line: int, run_id: str, entry: dict, pruned: set[str]) -> None:
        if not RUN_ID_PATTERN.match(run_id):
            self._problem(line, run_id, "names something that is not a run id")
            return
        folders = sorted(p for p in runs_dir.glob(f"*/*/{run_id}") if p.parts[-3] != RERUNS)
        if not folders:
            self._problem(line, run_id, "its run folder is missing from the archive")
            return
        folder = folders[0]
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            self._problem(line, run_id, f"its manifest {manifest_path} is missing")
            return
        if _sha256(manifest_path) != entry.get("manifest_sha256"):
            self._problem(line, run_id, f"manifest {manifest_path} was changed after the run")
        try:
            manifest = read_manifest(folder)
        except ArchiveError as err:
            self._problem(line, run_id, str(err))
            return
        for name, digest in sorted(manifest.artefacts.items()):
            path = folder / name
            if name in pruned:
                continue
            self.files += 1
            if not path.is_file():
                self._problem(line, run_id, f"file {name} is missing (not recorded as pruned)")
            elif _sha256(path) != digest:
                self._problem(line, run_id, f"file {name} was changed after the run (its sha256 differs "
                                            "from the manifest's)")
        if manifest.schema < 2:
            return  # schema 1 recorded no artefact hashes: nothing more to compare
        for path in sorted(folder.iterdir()):
            if path.name in NOT_ARTEFACTS or path.name in manifest.artefacts:
                continue
            self._problem(line, run_id, f"file {path.name} is in the run folder but not in its manifest")


def _unknown_folders(runs_dir: Path, known: set[str], runs: dict[str, str]) -> list[LedgerProblem]:
    problems = []
    for folder in sorted(runs_dir.glob("*/*/*")):
        if not folder.is_dir() or folder.parts[-3] == RERUNS:
            continue
        run_id = folder.name
        if run_id in known or runs.get(run_id) == RunStatus.RUNNING:
            continue
        problems.append(LedgerProblem(None, run_id, f"the run folder {folder} is not in the ledger"))
    return problems


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
