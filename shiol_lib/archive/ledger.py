"""The append-only, hash-chained ledger of the run history (``runs/ledger.jsonl``).

Each line is one entry: ``kind`` ``run`` (a run closed: its id, job, status and the SHA-256 of its
manifest) or ``prune`` (heavy files of a run removed on purpose, by name), with its sequence number,
the hash of the entry before it and its own hash. With a key (``SHIOL_LEDGER_KEY``) each entry also
carries an HMAC of its hash, so whoever can write ``runs/`` (and the store's anchor) still cannot
forge a consistent history without the key. Editing, deleting, reordering or appending a line breaks
the chain or the signature; the store keeps the head (sequence and hash) written when a run closes,
so truncating the ledger or appending to it shows too (:mod:`shiol_lib.archive.verify` checks it all).

Reading never raises on damaged input: a line that is not UTF-8 or not JSON is returned as a
:class:`LedgerLine` with its fault, and appending after it still works (the next entry chains to the
hash of the damaged line's bytes), so a damaged ledger never stops a run.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shiol_lib.archive import witness
from shiol_lib.archive.hashing import canonical_json, hmac_sha256, sha256_bytes, sha256_file
from shiol_lib.errors import ArchiveError

LEDGER = "ledger.jsonl"
LOCK = ".ledger.lock"
GENESIS = "0" * 64


@dataclass(frozen=True)
class LedgerProblem:
    """One place where the ledger, the archive or the store anchor does not check out."""

    line: int | None
    run_id: str | None
    problem: str

    def as_text(self) -> str:
        """One line for a report."""
        where = f"ledger line {self.line}" if self.line is not None else "archive"
        return f"{where} (run {self.run_id or '-'}): {self.problem}"


@dataclass(frozen=True)
class LedgerLine:
    """One line of the ledger file: its decoded entry, or why it could not be decoded."""

    number: int
    raw: bytes
    entry: dict[str, Any] | None
    fault: str | None = None

    @property
    def chain_hash(self) -> str:
        """The hash the next entry must chain to (the entry's own, or the raw bytes' for a damaged line)."""
        if self.entry is not None and isinstance(self.entry.get("hash"), str):
            return self.entry["hash"]
        return sha256_bytes(self.raw)


@dataclass(frozen=True)
class Head:
    """The newest entry of the ledger: what the store anchors."""

    seq: int
    hash: str


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of an entry's canonical JSON, without its ``hash`` and ``hmac`` fields."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "hmac")}
    return sha256_bytes(canonical_json(body).encode())


def sign(digest: str, key: str) -> str:
    """The HMAC-SHA256 (hex) of an entry hash under ``key``."""
    return hmac_sha256(digest, key)


@contextmanager
def locked(runs_dir: Path) -> Iterator[None]:
    """Hold the ledger's file lock (appends, and writing the pages that name the ledger head)."""
    path = Path(runs_dir) / LOCK
    try:
        lock = open(path, "a")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as err:
        raise ArchiveError(f"the ledger lock {path} cannot be opened ({err.strerror})") from err
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_lines(runs_dir: Path) -> list[LedgerLine]:
    """Every line of the ledger, oldest first; damaged lines carry their fault instead of an entry."""
    path = Path(runs_dir) / LEDGER
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise ArchiveError(f"the ledger {path} cannot be read ({err.strerror})") from err
    return [_decode(number, raw) for number, raw in enumerate(data.splitlines(), start=1)]


def _decode(number: int, raw: bytes) -> LedgerLine:
    try:
        entry = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return LedgerLine(number, raw, None, f"not UTF-8 text (byte {err.start})")
    except (ValueError, RecursionError) as err:
        return LedgerLine(number, raw, None, f"not JSON ({str(err)[:80]})")
    if not isinstance(entry, dict):
        return LedgerLine(number, raw, None, f"a JSON {type(entry).__name__}, not an entry")
    return LedgerLine(number, raw, entry)


def _last_line(runs_dir: Path) -> LedgerLine | None:
    """The newest line, numbered, decoding only it (appends and the head need no other)."""
    path = Path(runs_dir) / LEDGER
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ArchiveError(f"the ledger {path} cannot be read ({err.strerror})") from err
    raws = data.splitlines()
    return _decode(len(raws), raws[-1]) if raws else None


def read_ledger(runs_dir: Path) -> list[dict[str, Any]]:
    """The decodable entries, oldest first (damaged lines are left out: see :func:`read_lines`)."""
    return [line.entry for line in read_lines(runs_dir) if line.entry is not None]


def head(runs_dir: Path) -> Head | None:
    """The newest line of the ledger as (sequence number, hash), or None when it is empty."""
    last = _last_line(runs_dir)
    return Head(last.number, last.chain_hash) if last else None


def append_entry(
    runs_dir: Path, *, run_id: str, job: str, status: str, manifest_path: Path, key: str | None = None
) -> dict[str, Any]:
    """Append a ``run`` entry (a run closed) under a file lock; returns the entry written."""
    digest = sha256_file(manifest_path)
    body = {"kind": "run", "run_id": run_id, "job": job, "status": str(status), "manifest_sha256": digest}
    return _append(runs_dir, body, key=key)[-1]


def append_prune(runs_dir: Path, *, run_id: str, files: list[str], key: str | None = None) -> dict[str, Any]:
    """Append a ``prune`` entry: these files of ``run_id`` were removed on purpose."""
    return append_prunes(runs_dir, {run_id: files}, key=key)[-1]


def append_prunes(runs_dir: Path, files: dict[str, list[str]], *, key: str | None = None) -> list[dict[str, Any]]:
    """Append one ``prune`` entry per run (these files of it removed on purpose), in one write and one sync."""
    bodies = [{"kind": "prune", "run_id": run_id, "pruned": sorted(names)} for run_id, names in files.items()]
    return _append(runs_dir, *bodies, key=key)


def _append(runs_dir: Path, *bodies: dict[str, Any], key: str | None) -> list[dict[str, Any]]:
    path = Path(runs_dir) / LEDGER
    entries: list[dict[str, Any]] = []
    with locked(runs_dir):
        last = _last_line(runs_dir)
        seq, previous = (last.number, last.chain_hash) if last else (0, GENESIS)
        for body in bodies:
            seq += 1
            entry = {"seq": seq, **body, "recorded_at": datetime.now(UTC).isoformat(), "prev_hash": previous}
            entry["hash"] = previous = entry_hash(entry)
            if key:
                entry["hmac"] = sign(entry["hash"], key)
            entries.append(entry)
        line = "".join(canonical_json(entry) + "\n" for entry in entries)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if last and not path.read_bytes().endswith(b"\n"):
                    os.write(fd, b"\n")  # a torn last line stays a line of its own
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise ArchiveError(f"could not append to the ledger {path}: {err.strerror}") from err
    if entries:
        witness.log_head(entries[-1]["seq"], entries[-1]["hash"], key)  # the signed head, also outside runs/
    return entries


def check_chain(lines: list[LedgerLine], *, key: str | None = None) -> list[LedgerProblem]:
    """Problems in the chain itself: damaged lines, sequence, links, hashes and (with a key) signatures."""
    problems = []
    previous = GENESIS
    for line in lines:
        entry = line.entry
        if entry is None:
            problems.append(LedgerProblem(line.number, None, f"the line is {line.fault}: the ledger was altered"))
            previous = line.chain_hash
            continue
        run_id = entry.get("run_id") if isinstance(entry.get("run_id"), str) else None
        if entry.get("seq") != line.number:
            problems.append(
                LedgerProblem(line.number, run_id, f"sequence {entry.get('seq')!r} where {line.number} was expected")
            )
        if entry.get("prev_hash") != previous:
            problems.append(
                LedgerProblem(
                    line.number, run_id, "does not chain to the line before (a line removed, inserted or reordered)"
                )
            )
        if entry_hash(entry) != entry.get("hash"):
            problems.append(LedgerProblem(line.number, run_id, "content does not match its hash (line edited)"))
        if key:
            signature = entry.get("hmac")
            if not isinstance(signature, str):
                problems.append(LedgerProblem(line.number, run_id, "is not signed with SHIOL_LEDGER_KEY"))
            elif not hmac.compare_digest(signature, sign(str(entry.get("hash")), key)):
                problems.append(
                    LedgerProblem(line.number, run_id, "signature does not match SHIOL_LEDGER_KEY (forged or edited)")
                )
        previous = line.chain_hash
    return problems
