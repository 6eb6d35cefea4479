"""The archive's hashes: SHA-256 of bytes and of files, and the canonical JSON that the ledger hashes.

One definition of each, so the ledger, verify and the run's artefact list cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

from shiol_lib.errors import ArchiveError

_BLOCK = 1 << 20
# What differs between two executions of the same notebook by construction: object addresses in a repr,
# the random id pandas gives each styled table.
_UNREPEATABLE = re.compile(r"\b0x[0-9a-fA-F]{6,}\b|\bT_[0-9a-f]{5}(?![0-9a-z])")


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


def notebook_outputs_sha(path: Path, *, masked: tuple[str, ...] = ()) -> str | None:
    """Hex SHA-256 of what an executed notebook's cells showed (None: no readable notebook at ``path``).

    Only what a cell showed counts: its standard output (joined), displayed and returned data of every MIME
    type, and errors; never stderr (warnings and logs), execution counts, timings or metadata. Each text in
    ``masked`` (the run's own id, which a rerun hands anew), object addresses (``0x7f...``) and the random
    ids of pandas' styled tables (``T_1d0a7``) read as ``<masked>``.
    """
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    shown = [_cell_outputs(cell.get("outputs", [])) for cell in cells if cell.get("cell_type") == "code"]
    text = canonical_json(shown)
    for value in masked:
        if value:
            text = text.replace(value, "<masked>")
    text = _UNREPEATABLE.sub("<masked>", text)
    return sha256_bytes(text.encode("utf-8"))


def _cell_outputs(outputs: list[dict[str, Any]]) -> list[Any]:
    streams: dict[str, str] = {}
    shown: list[Any] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stdout":
            streams["stdout"] = streams.get("stdout", "") + _text(output.get("text"))
        elif kind in ("display_data", "execute_result"):
            shown.append({mime: _text(value) for mime, value in output.get("data", {}).items()})
        elif kind == "error":
            shown.append({"error": [output.get("ename"), output.get("evalue")]})
    return [streams, shown]


def _text(value: Any) -> Any:
    """A notebook's multi-line text (stored as a list of lines, or one string) as one string."""
    return "".join(value) if isinstance(value, list) else value
