"""What the last verification saw (``verify_state.json`` beside the store): ``shiol runs verify --since-last``.

A full verification hashes every file of ``runs/`` and records, for each file whose hash it compared,
the file's identity as the kernel keeps it: size, inode, ``mtime_ns`` and ``ctime_ns``, with the
hash. The next ``--since-last`` verification stats every file and re-hashes only those whose identity
changed; it still reads and checks the whole ledger chain, the store's anchor and rows, the witness
and the walk for unknown files, as a full one does.

Why that is safe: writing a file's bytes, renaming another file over it or changing its metadata sets
its ``ctime`` to the kernel's clock, and ``ctime`` cannot be set from user space (``touch``,
``utime`` and a restored backup set ``mtime``, never ``ctime``); so any tampering with a recorded
file since the last verification changes its identity and is hashed again. What it trusts: the
kernel's clock and this file. With ``SHIOL_LEDGER_KEY`` the state is signed and a state that does not
match the key is ignored (the verification is then a full one); without a key, whoever can write the
store's folder can write this file too (as they can the store's anchor). Someone with root (raw disk
writes, setting the clock back) is outside what ``--since-last`` sees: a full verification (without
``--since-last``) still hashes every byte.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiol_lib.archive.folders import write_atomic
from shiol_lib.archive.hashing import canonical_json, hmac_sha256, sha256_file
from shiol_lib.errors import ArchiveError

log = logging.getLogger(__name__)

STATE = "verify_state.json"
_VERSION = 1


@dataclass
class FileHashes:
    """File hashes for one verification: taken from the last state when the file's identity is unchanged."""

    runs_dir: Path
    known: dict[str, list[Any]] = field(default_factory=dict)  # rel -> [size, ino, mtime_ns, ctime_ns, sha256]
    seen: dict[str, list[Any]] = field(default_factory=dict)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # manifest sha256 -> facts
    outputs: dict[str, list[Any]] = field(default_factory=dict)  # run id -> [store digest, verified hashes]
    hashed: int = 0
    reused: int = 0
    outputs_hashed: int = 0

    @property
    def root(self) -> str:
        """``runs_dir`` as text ending with a separator: the prefix cut from each path for its record."""
        return os.path.join(os.fspath(self.runs_dir), "")

    def store_outputs(self, runs: list[str], digests: dict[str, str], read: Any) -> dict[str, dict[str, str]]:
        """The store's output hashes of ``runs``: recorded ones where the store's digest is unchanged.

        ``digests`` is :func:`~shiol_lib.store.predictions.output_digests`; ``read(run_ids)`` computes the
        hashes of the others (:func:`~shiol_lib.store.predictions.all_output_hashes`). Afterwards
        :attr:`outputs` holds every run's digest and hashes, for the next verification.
        """
        known, outputs, changed = self.outputs, {}, []
        for run_id in runs:
            entry = known.get(run_id)
            if isinstance(entry, list) and len(entry) == 2 and entry[0] == digests.get(run_id, ""):
                outputs[run_id] = dict(entry[1])
            else:
                changed.append(run_id)
        outputs.update(read(changed))
        self.outputs = {r: [digests.get(r, ""), outputs[r]] for r in runs}
        self.outputs_hashed = len(changed)
        return outputs

    def sha256(self, path: str | os.PathLike[str]) -> str | None:
        """The file's SHA-256 (None when it cannot be read): hashed again unless its identity is recorded."""
        text, root = os.fspath(path), self.root
        if not text.startswith(root):
            return None
        rel = text[len(root) :]
        try:
            st = os.stat(text, follow_symlinks=False)
        except OSError:
            return None
        identity = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
        known = self.known.get(rel)
        if known is not None and known[:4] == identity:
            self.reused += 1
            self.seen[rel] = known
            return str(known[4])
        try:
            digest = sha256_file(Path(text))
        except ArchiveError:
            return None
        self.hashed += 1
        after = os.stat(text, follow_symlinks=False)
        if [after.st_size, after.st_ino, after.st_mtime_ns, after.st_ctime_ns] == identity:
            self.seen[rel] = [*identity, digest]  # not recorded while it was changing under us
        return digest


def state_path(db_path: Path) -> Path:
    """Where the state lives: beside the store, outside ``runs/`` (which the archive's walk accounts for)."""
    return Path(db_path).parent / STATE


def load(path: Path, runs_dir: Path, *, key: str | None) -> FileHashes | None:
    """The last verification's state, or None (missing, unreadable, another archive, or not signed by ``key``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        if not isinstance(err, FileNotFoundError):
            log.warning("the verify state %s cannot be read (%s); verifying in full", path, err)
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION or data.get("runs_dir") != str(runs_dir):
        return None
    body = {k: v for k, v in data.items() if k != "hmac"}
    if key and not (
        isinstance(data.get("hmac"), str) and hmac.compare_digest(data["hmac"], hmac_sha256(canonical_json(body), key))
    ):
        log.warning("the verify state %s is not signed with SHIOL_LEDGER_KEY; verifying in full", path)
        return None
    files, manifests, outputs = data.get("files"), data.get("manifests"), data.get("outputs", {})
    if not isinstance(files, dict) or not isinstance(manifests, dict) or not isinstance(outputs, dict):
        return None
    return FileHashes(Path(runs_dir), known=files, manifests=manifests, outputs=outputs)


def save(path: Path, hashes: FileHashes, *, key: str | None) -> None:
    """Record what this verification hashed or confirmed (only after it found the archive intact)."""
    body: dict[str, Any] = {
        "version": _VERSION,
        "runs_dir": str(hashes.runs_dir),
        "files": hashes.seen,
        "manifests": hashes.manifests,
        "outputs": hashes.outputs,
    }
    if key:
        body["hmac"] = hmac_sha256(canonical_json(body), key)
    write_atomic(Path(path), json.dumps(body, separators=(",", ":")).encode("utf-8"))
