"""The pages record (``runs/pages.json``): the hash of every derived page as it was written.

The dashboard (``runs/index.html``) and each run's page (``index.html`` beside its manifest) are
derived from the manifests and rewritten at every run close and prune, so their hashes cannot sit in
the ledger entry of the run they describe. Instead each write of the pages records, under the ledger
lock, the SHA-256 of every page it wrote and the ledger head they show; with ``SHIOL_LEDGER_KEY`` the
record carries an HMAC. ``shiol runs verify`` compares every page with the record, and the record's
head with the ledger's: an edited page, a page nobody wrote, or an older record put back all show.

Recording rather than re-deriving: the pages also show the store's dead letters and missed drawings
and what is due at the moment they were written, which the verified manifests do not hold, and an
older workbench renders them differently; a record checks them exactly whatever wrote them.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shiol_lib.archive.folders import write_atomic
from shiol_lib.archive.hashing import canonical_json, hmac_sha256, sha256_file
from shiol_lib.archive.ledger import Head
from shiol_lib.errors import ArchiveError

PAGES = "pages.json"
PAGE = "index.html"  # the dashboard at the top of runs/, and each run's page in its folder
CHUNK_DIR = "_index"  # the dashboard's month chunks (not a job name: job names start with a letter)
_CHUNK = re.compile(r"^_index/runs-[0-9]{4}-[0-9]{2}\.js$")


def chunk_rel(month: str) -> str:
    """The relative path of a month's chunk of dashboard rows (``YYYY-MM``)."""
    return f"{CHUNK_DIR}/runs-{month}.js"


def is_page(rel: str) -> bool:
    """Whether a relative path can be a recorded page: an ``index.html`` (dashboard, run page) or a chunk."""
    parts = rel.split("/")
    if rel.startswith("/") or "" in parts or "." in parts or ".." in parts or "\\" in rel:
        return False
    return parts[-1] == PAGE or bool(_CHUNK.match(rel))


@dataclass
class PagesRecord:
    """What one write of the pages left: the ledger head it showed and each page's hash by relative path."""

    head: Head | None
    pages: dict[str, str] = field(default_factory=dict)
    written_at: str = ""
    hmac: str | None = None

    def body(self) -> dict[str, object]:
        """The fields the signature covers."""
        return {
            "ledger_seq": self.head.seq if self.head else 0,
            "ledger_hash": self.head.hash if self.head else None,
            "pages": dict(sorted(self.pages.items())),
            "written_at": self.written_at,
        }

    def signature_ok(self, key: str) -> bool:
        """Whether the record carries an HMAC made with ``key``."""
        return self.hmac is not None and hmac.compare_digest(self.hmac, hmac_sha256(canonical_json(self.body()), key))


def record_pages(
    runs_dir: Path,
    pages: list[Path],
    head: Head | None,
    *,
    key: str | None = None,
    kept: dict[str, str] | None = None,
) -> Path:
    """Record the hash of each written page and the ledger ``head`` they show (call under the ledger lock).

    ``kept``: the hashes of the pages an incremental write left as they were (from the previous record);
    the new record holds them beside the pages written now.

    Raises:
        ArchiveError: a page cannot be read or the record cannot be written.
    """
    runs_dir = Path(runs_dir)
    hashes = dict(kept or {})
    hashes.update({p.relative_to(runs_dir).as_posix(): sha256_file(p) for p in pages})
    record = PagesRecord(head, hashes, datetime.now(UTC).isoformat())
    data = record.body()
    if key:
        data["hmac"] = hmac_sha256(canonical_json(record.body()), key)
    path = runs_dir / PAGES
    write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return path


def read_pages(runs_dir: Path) -> PagesRecord | None:
    """The pages record, or None when no page was ever written.

    Raises:
        ArchiveError: the record cannot be read or is not a pages record.
    """
    path = Path(runs_dir) / PAGES
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ArchiveError(f"the pages record {path} cannot be read ({err.strerror})") from err
    except ValueError as err:
        raise ArchiveError(f"the pages record {path} is not JSON: it was altered") from err
    pages, seq, digest = (
        (data.get("pages"), data.get("ledger_seq"), data.get("ledger_hash"))
        if isinstance(data, dict)
        else (None, None, None)
    )
    if (
        not isinstance(pages, dict)
        or not all(isinstance(v, str) for v in pages.values())
        or not isinstance(seq, int)
        or not isinstance(digest, str | None)
    ):
        raise ArchiveError(f"the pages record {path} is not a pages record: it was altered")
    signature = data.get("hmac")
    return PagesRecord(
        Head(seq, digest) if seq and digest else None,
        dict(pages),
        str(data.get("written_at", "")),
        signature if isinstance(signature, str) else None,
    )
