"""One hasher for the archive, and no import circle among the archive's modules."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from shiol_lib.archive import ledger
from shiol_lib.archive.hashing import canonical_json, sha256_bytes, sha256_file
from shiol_lib.errors import ArchiveError

ARCHIVE = Path(__file__).resolve().parents[2] / "shiol_lib" / "archive"


def test_file_and_bytes_hash_agree_across_blocks(tmp_path):
    data = bytes(range(256)) * 5000  # more than one read block
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == sha256_bytes(data) == hashlib.sha256(data).hexdigest()


def test_unreadable_file_names_the_path(tmp_path):
    with pytest.raises(ArchiveError, match=r"could not read .*missing\.bin to hash it"):
        sha256_file(tmp_path / "missing.bin")


def test_canonical_json_is_compact_sorted_and_what_the_ledger_hashes():
    assert canonical_json({"b": [1, {"d": 2, "c": 3}], "a": "x"}) == '{"a":"x","b":[1,{"c":3,"d":2}]}'
    entry = {"seq": 1, "kind": "run", "hash": "ignored", "hmac": "ignored"}
    assert ledger.entry_hash(entry) == sha256_bytes(b'{"kind":"run","seq":1}')


def _archive_imports(path: Path) -> set[str]:
    """The archive modules a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = f"shiol_lib.archive.{node.module or ''}".rstrip(".") if node.level == 1 else node.module or ""
            if module == "shiol_lib.archive":
                found |= {alias.name for alias in node.names}
            elif module.startswith("shiol_lib.archive."):
                found.add(module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("shiol_lib.archive.")}
    return found


def test_no_import_circle_among_archive_modules():
    graph = {p.stem: _archive_imports(p) - {p.stem} for p in ARCHIVE.glob("*.py") if p.stem != "__init__"}
    assert {"folders", "ledger", "verify", "retention", "hashing"} <= set(graph)

    def circle_from(module: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                return [*path[path.index(target) :], target]
            found = circle_from(target, [*path, target])
            if found:
                return found
        return None

    circles = [c for c in (circle_from(m, [m]) for m in sorted(graph)) if c]
    assert circles == [], f"import circles: {[' -> '.join(c) for c in circles]}"
