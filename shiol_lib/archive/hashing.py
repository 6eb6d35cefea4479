"""The archive's hashes: SHA-256 of bytes and of files, and the canonical JSON that the ledger hashes.

One definition of each, so the ledger, verify and the run's artefact list cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from shiol_lib.errors import ArchiveError

_BLOCK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content, read in blocks.

    Raises:
        ArchiveError: the file cannot be read (named, with the reason).
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
    except OSError as err:
        raise ArchiveError(f"could not read {path} to hash it: {err.strerror}") from err
    return digest.hexdigest()


def canonical_json(data: Any) -> str:
    """Compact JSON with sorted keys: one text for equal data (a ledger line, the body an entry hash covers)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def hmac_sha256(text: str, key: str) -> str:
    """The HMAC-SHA256 (hex) of ``text`` under ``key`` (ledger entries, the pages record, the witness)."""
    return hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()
