"""``shiol runs verify``: cross-check the ledger, every byte of ``runs/``, the store and a witness.

What it guarantees: every run the store closed has its ledger entry and manifest, and every run the
ledger names has its store row; every ledger entry chains to the one before, matches its hash (and,
with ``SHIOL_LEDGER_KEY``, its signature); every manifest matches the hash its entry recorded, every
artefact (``.ipynb``, ``.html``, ``.log``) the hash its manifest recorded (unless a ``prune`` entry
says it was removed) and every output the manifest recorded (tickets, artefacts) the store's rows
for that run; the dashboard and each run page match the pages record
(:mod:`shiol_lib.archive.pages`); no entry is missing at the tail or appended past the head the
store anchored; nothing at any depth of ``runs/`` is unknown to the ledger
(:mod:`shiol_lib.archive.coverage`); with a witness, the ledger still reaches the witnessed head.

What it cannot do: whoever holds the key *and* can write both ``runs/`` and the store can rewrite
history consistently after the newest witness kept elsewhere; without a key, whoever can write both
can too. Runs archived before manifest schema 2 recorded no artefact hashes: their files are checked
by name only.

Every check reports instead of raising: a damaged file is a problem in the list, never a crash.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiol_lib.archive.coverage import RERUNS, check_pages, unknown_paths
from shiol_lib.archive.folders import HEAVY_SUFFIXES, MANIFEST, PRUNED, RUN_ID_PATTERN, read_manifest
from shiol_lib.archive.hashing import sha256_file
from shiol_lib.archive.ledger import Head, LedgerLine, LedgerProblem, check_chain, read_lines
from shiol_lib.archive.pages import CHUNK_DIR
from shiol_lib.archive.verify_state import FileHashes
from shiol_lib.archive.witness import Witness
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import ArchiveError

# Files of a run folder that are not artefacts: the manifest (hashed by the ledger), the prune marker
# and the run page (derived from the manifest, rewritten with the index).
NOT_ARTEFACTS = frozenset({MANIFEST, PRUNED, "index.html"})


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


def verify_archive(
    runs_dir: Path,
    *,
    anchor: tuple[int, str] | None,
    runs: dict[str, str],
    key: str | None = None,
    in_flight: set[str] | frozenset[str] = frozenset(),
    outputs: Mapping[str, Mapping[str, str]] | None = None,
    witness: Witness | None = None,
    hashes: FileHashes | None = None,
) -> Verification:
    """Check the ledger chain, its entries' files, the pages, the store and (optionally) a witness.

    Args:
        runs_dir: The archive folder.
        anchor: The (seq, hash) the store recorded when a run last closed.
        runs: Every archived run id the store knows, with its status.
        key: ``SHIOL_LEDGER_KEY``: signatures are checked when set.
        in_flight: Run ids whose process is alive on this host with a fresh heartbeat: only their
            folders may be missing from the ledger (a ``running`` row alone excuses nothing).
        outputs: The store's output hashes by run id (``store.predictions.output_hashes``); None skips
            the comparison with the manifests' outputs.
        witness: A ledger head kept outside the archive that the ledger must still reach.
        hashes: The file hashes of the last verification (``--since-last``: a file whose identity is
            unchanged is not hashed again; :mod:`shiol_lib.archive.verify_state`); None hashes every
            file. Either way it ends holding what this verification confirmed, for the next.
    """
    runs_dir = Path(runs_dir)
    hashes = hashes if hashes is not None else FileHashes(runs_dir)
    try:
        lines = read_lines(runs_dir)
    except ArchiveError as err:
        return Verification([LedgerProblem(None, None, str(err))])
    result = Verification(entries=len(lines), signed=bool(key), anchored=anchor is not None)
    result.problems += check_chain(lines, key=key)
    result.problems += _check_anchor(lines, anchor)
    if witness is not None:
        result.problems += check_witness(lines, witness, key=key)
    checked = _EntryCheck(runs_dir, lines, hashes)
    result.problems += checked.problems
    result.runs, result.files = len(checked.ledger_runs), checked.files
    for run_id, status in sorted(runs.items()):
        if status != RunStatus.RUNNING and run_id not in checked.ledger_runs:
            result.problems.append(
                LedgerProblem(
                    None,
                    run_id,
                    f"the store closed this run ({status}) but the ledger has no entry for it (entry removed?)",
                )
            )
    for run_id in sorted(checked.ledger_runs - set(runs)):
        result.problems.append(
            LedgerProblem(
                None, run_id, "the ledger names this run but the store has no row for it (its row was deleted?)"
            )
        )
    if outputs is not None:
        for run_id, manifest in sorted(checked.manifests.items()):
            result.problems += _check_outputs(run_id, manifest, outputs.get(run_id, {}))
    page_problems, record = check_pages(runs_dir, lines, key=key, digest=hashes.sha256)
    result.problems += page_problems
    result.files += len(record.pages) if record else 0
    result.problems += unknown_paths(
        runs_dir,
        run_folders=checked.folders,
        ledger_runs=checked.ledger_runs,
        in_flight=set(in_flight),
        pages=set(record.pages) if record else set(),
        running={r for r, status in runs.items() if status == RunStatus.RUNNING},
    )
    return result


def check_witness(lines: list[LedgerLine], witness: Witness, *, key: str | None = None) -> list[LedgerProblem]:
    """Whether the ledger still reaches a witnessed head: the entry at its sequence, with its hash.

    The chain past it is checked by :func:`~shiol_lib.archive.ledger.check_chain`; with ``key`` the
    witness must carry its signature.
    """
    problems = []
    if key and witness.hmac is None:
        problems.append(LedgerProblem(None, None, "the witness is not signed with SHIOL_LEDGER_KEY"))
    elif key and not witness.signature_ok(key):
        problems.append(
            LedgerProblem(None, None, "the witness's signature does not match SHIOL_LEDGER_KEY (forged or edited)")
        )
    if witness.seq > len(lines):
        problems.append(
            LedgerProblem(
                None,
                None,
                f"the ledger ends at entry {len(lines)} but the witness taken "
                f"at {witness.at} saw entry {witness.seq}: the newest entries "
                "were removed (history rolled back)",
            )
        )
    elif lines[witness.seq - 1].chain_hash != witness.hash:
        problems.append(
            LedgerProblem(
                witness.seq,
                None,
                f"entry {witness.seq} is not the one witnessed at "
                f"{witness.at} ({witness.hash[:12]}...): the ledger was "
                "rewritten from there",
            )
        )
    return problems


def _check_outputs(run_id: str, manifest: _Facts, stored: Mapping[str, str]) -> list[LedgerProblem]:
    """The store's outputs of a run against the hashes its manifest recorded at the run's close."""
    problems = []
    for name, digest in sorted(manifest.outputs.items()):
        found = stored.get(name)
        if found is None:
            if name == "predictions" and manifest.status == RunStatus.CRASHED:
                continue  # a crashed run's tickets are discarded on purpose; their hash stays in the manifest
            problems.append(
                LedgerProblem(None, run_id, f"output {name} that the manifest recorded is missing from the store")
            )
        elif found != digest:
            problems.append(
                LedgerProblem(
                    None,
                    run_id,
                    f"output {name} in the store differs from the hash its "
                    "manifest recorded (rewritten under this run's id after "
                    "it closed)",
                )
            )
    for name in sorted(set(stored) - set(manifest.outputs)):
        problems.append(
            LedgerProblem(
                None,
                run_id,
                f"output {name} is in the store under this run's id but not in its manifest (written after it closed)",
            )
        )
    return problems


def verify_ledger(runs_dir: Path, *, key: str | None = None) -> list[LedgerProblem]:
    """The chain, and every manifest and artefact its entries name (no store cross-check).

    :func:`verify_archive` adds the store anchor, the store's runs and the walk for unknown folders.
    """
    lines = read_lines(runs_dir)
    return check_chain(lines, key=key) + _EntryCheck(Path(runs_dir), lines, FileHashes(Path(runs_dir))).problems


def _check_anchor(lines: list[LedgerLine], anchor: tuple[int, str] | None) -> list[LedgerProblem]:
    if anchor is None:
        if lines:
            return [
                LedgerProblem(
                    None,
                    None,
                    "the store holds no ledger anchor; it is written when a run closes "
                    "(a store restored without its anchor, or one that predates it)",
                )
            ]
        return []
    head = Head(*anchor)
    if head.seq > len(lines):
        return [
            LedgerProblem(
                None,
                None,
                f"the ledger ends at entry {len(lines)} but the store anchored entry "
                f"{head.seq} ({head.hash[:12]}...): entries were removed from the tail",
            )
        ]
    problems = []
    if lines[head.seq - 1].chain_hash != head.hash:
        problems.append(
            LedgerProblem(
                head.seq,
                None,
                f"entry {head.seq} is not the one the store anchored ({head.hash[:12]}...): the ledger was rewritten",
            )
        )
    for line in lines[head.seq :]:
        run_id = line.entry.get("run_id") if line.entry else None
        problems.append(
            LedgerProblem(
                line.number,
                run_id if isinstance(run_id, str) else None,
                f"entry {line.number} is past the head the store anchored (entry {head.seq}): "
                "appended outside a run's close (forged), or a crash between ledger and store",
            )
        )
    return problems


@dataclass(frozen=True)
class _Facts:
    """What the checks need of a verified manifest (kept in the verify state by the manifest's hash)."""

    status: str
    schema: int
    artefacts: dict[str, str]
    outputs: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "schema": self.schema, "artefacts": self.artefacts, "outputs": self.outputs}


def _facts(folder: Path, digest: str | None, hashes: FileHashes) -> _Facts:
    """The manifest's facts: from the state when its hash was recorded there, else read (ArchiveError)."""
    known = hashes.manifests.get(digest) if digest else None
    if isinstance(known, dict):
        try:
            return _Facts(str(known["status"]), int(known["schema"]), dict(known["artefacts"]), dict(known["outputs"]))
        except (KeyError, TypeError, ValueError):
            pass
    manifest = read_manifest(folder)
    return _Facts(str(manifest.status), manifest.schema, dict(manifest.artefacts), dict(manifest.outputs))


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


class _EntryCheck:
    """Walks the run and prune entries: manifests, artefacts and files nobody recorded."""

    def __init__(self, runs_dir: Path, lines: list[LedgerLine], hashes: FileHashes) -> None:
        self.problems: list[LedgerProblem] = []
        self.files = 0
        self.folders: dict[Path, str] = {}  # the run folder each entry was checked against
        self.manifests: dict[str, _Facts] = {}
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
