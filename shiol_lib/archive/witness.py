"""The witness: the signed ledger head, kept where someone with file access to the home cannot roll it back.

A witness is one JSON object: the ledger's newest sequence number and hash, when it was taken, and
(with ``SHIOL_LEDGER_KEY``) an HMAC of those three under the key. The ledger logs one each time it
appends (every run close, every prune), and ``shiol runs witness`` exports one for an operator to keep
elsewhere. ``shiol runs verify --witness FILE`` then fails unless the archive still reaches it: the
entry at that sequence must exist with that hash and the chain must extend it. The store's anchor
cannot do this, since whoever can write the store can point it back to an older entry (its sequence
and hash are not secret); a witness kept off the machine cannot be pointed back.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shiol_lib.archive.hashing import canonical_json, hmac_sha256
from shiol_lib.errors import ArchiveError

log = logging.getLogger(__name__)

KIND = "shiol-ledger-witness"


@dataclass(frozen=True)
class Witness:
    """A ledger head as someone outside the archive saw it."""

    seq: int
    hash: str
    at: str  # ISO-8601 UTC
    hmac: str | None = None

    def body(self) -> dict[str, object]:
        """The fields the signature covers."""
        return {"kind": KIND, "seq": self.seq, "hash": self.hash, "at": self.at}

    def to_json(self) -> str:
        """One line of canonical JSON (the signature last, when there is one)."""
        return canonical_json({**self.body(), **({"hmac": self.hmac} if self.hmac else {})})

    def signature_ok(self, key: str) -> bool:
        """Whether the witness carries an HMAC made with ``key``."""
        return self.hmac is not None and hmac.compare_digest(self.hmac, _sign(self.body(), key))


def make(seq: int, digest: str, key: str | None, *, at: datetime | None = None) -> Witness:
    """A witness of the head (``seq``, ``digest``), signed when ``key`` is set."""
    stamp = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
    unsigned = Witness(seq, digest, stamp)
    return Witness(seq, digest, stamp, _sign(unsigned.body(), key) if key else None)


def log_head(seq: int, digest: str, key: str | None) -> None:
    """Write the witness of a new head to the log (one line; its JSON is what ``--witness`` reads)."""
    log.info("ledger witness %s", make(seq, digest, key).to_json())


def parse(text: str, *, where: str = "the witness") -> Witness:
    """The witness in ``text``: its JSON object, alone or inside a log line (the last one wins).

    Raises:
        ArchiveError: no witness object in the text, or one with missing or mistyped fields.
    """
    found = None
    decoder = json.JSONDecoder()
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            data, _ = decoder.raw_decode(line[start:])
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("kind") == KIND:
            found = data
    if found is None:
        raise ArchiveError(
            f'{where} holds no ledger witness (a JSON object with "kind": "{KIND}"); \'shiol runs witness\' writes one'
        )
    seq, digest, at, signature = found.get("seq"), found.get("hash"), found.get("at"), found.get("hmac")
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 1
        or not isinstance(digest, str)
        or len(digest) != 64
        or not isinstance(at, str)
        or not isinstance(signature, str | None)
    ):
        raise ArchiveError(
            f"{where} is not a valid witness: it needs seq (1 or more), hash (64 hex), at and optionally hmac"
        )
    return Witness(seq, digest, at, signature)


def read(path: Path) -> Witness:
    """The witness kept in the file ``path`` (see :func:`parse`)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise ArchiveError(f"the witness {path} cannot be read ({err.strerror})") from err
    return parse(text, where=f"the witness {path}")


def _sign(body: dict[str, object], key: str) -> str:
    return hmac_sha256(canonical_json(body), key)
