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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shiol_lib.archive.coverage import check_pages, unknown_paths
from shiol_lib.archive.entries import NOT_ARTEFACTS, EntryCheck, Facts, artefact_hashes
from shiol_lib.archive.ledger import Head, LedgerLine, LedgerProblem, check_chain, read_lines
from shiol_lib.archive.verify_state import FileHashes
from shiol_lib.archive.witness import Witness
from shiol_lib.domain.runs import RunStatus
from shiol_lib.errors import ArchiveError

__all__ = ["NOT_ARTEFACTS", "Verification", "artefact_hashes", "check_witness", "verify_archive", "verify_ledger"]


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
    checked = EntryCheck(runs_dir, lines, hashes)
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


def _check_outputs(run_id: str, manifest: Facts, stored: Mapping[str, str]) -> list[LedgerProblem]:
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
    return check_chain(lines, key=key) + EntryCheck(Path(runs_dir), lines, FileHashes(Path(runs_dir))).problems


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
