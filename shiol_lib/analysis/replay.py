"""What a walk-forward replay can keep between runs: its keys and the bytes of each kept result.

A backtest target's tickets are a pure function of the code, the drawings before the target, the seed
and the settings, given its refit (the model and weights of its refit drawing, themselves a pure function
of the same inputs up to that drawing). Each result is therefore kept under a key that hashes exactly
those inputs: :func:`refit_key` and :func:`tickets_key`. The code version (:func:`code_version`) hashes
the source of the analysis and domain packages and the versions of the numeric libraries, so any change
to the code that computes a replay gives new keys. Payloads are bytes (JSON; the boosters as XGBoost's
UBJSON, which keeps every float bit for bit), so a kept result decodes to exactly what was computed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import xgboost as xgb

from shiol_lib.analysis.model import ModelMeta, NumberModel
from shiol_lib.analysis.scoring import Weights
from shiol_lib.analysis.weights import OptimizedWeights
from shiol_lib.domain.draws import TICKET_COLUMNS
from shiol_lib.errors import ArtefactError

REFIT_FORMAT = "shiol-backtest-refit/1"
TICKETS_FORMAT = "shiol-backtest-tickets/1"
KEY_FORMAT = "shiol-backtest-key/1"
_SOURCES = ("analysis", "domain")  # the packages whose code computes a replay
_LIBRARIES = ("numpy", "pandas", "scipy", "xgboost-cpu", "xgboost")


@dataclass(frozen=True)
class Refit:
    """The model and weights fitted at one refit drawing, used for every target up to the next one."""

    anchor: date
    model: NumberModel
    weights: OptimizedWeights | Weights


@dataclass(frozen=True)
class ReplayEntry:
    """One computed result to keep: its key, kind (``refit`` or ``tickets``), drawing and bytes."""

    key: str
    kind: str
    draw_date: date
    payload: bytes


@lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 of the analysis and domain sources, the Python version and the numeric libraries' versions."""
    digest = hashlib.sha256(f"{KEY_FORMAT}\npython {platform.python_version()}\n".encode())
    for name in _LIBRARIES:
        try:
            digest.update(f"{name} {version(name)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{name} -\n".encode())
    root = Path(__file__).resolve().parents[1]
    for package in _SOURCES:
        for path in sorted((root / package).glob("*.py")):
            digest.update(f"{package}/{path.name}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _key(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def refit_key(*, anchor: date, history_hash: str, seed: int, settings: dict[str, Any]) -> str:
    """The key of a refit: code version, refit drawing, hash of the drawings before it, seed, settings."""
    return _key(
        {
            "format": KEY_FORMAT,
            "kind": "refit",
            "code": code_version(),
            "anchor": anchor.isoformat(),
            "history": history_hash,
            "seed": seed,
            "settings": settings,
        }
    )


def tickets_key(*, refit: str, target: date, history_hash: str, n_tickets: int) -> str:
    """The key of a target's tickets: its refit's key, the target, the drawings before it, the count."""
    return _key(
        {
            "format": KEY_FORMAT,
            "kind": "tickets",
            "refit": refit,
            "target": target.isoformat(),
            "history": history_hash,
            "n_tickets": n_tickets,
        }
    )


def encode_refit(refit: Refit) -> bytes:
    """The refit as bytes: JSON with the model metadata, the boosters as base64 UBJSON, the weights."""
    weights = refit.weights
    tuned = isinstance(weights, OptimizedWeights)
    stored = weights.as_json() if isinstance(weights, OptimizedWeights) else asdict(weights)
    payload = {
        "format": REFIT_FORMAT,
        "anchor": refit.anchor.isoformat(),
        "meta": refit.model.meta.as_json(),
        "boosters": {
            kind: base64.b64encode(bytes(booster.save_raw("ubj"))).decode("ascii")
            for kind, booster in refit.model.boosters.items()
        },
        "tuned": tuned,
        "weights": stored,
    }
    return json.dumps(payload).encode()


def decode_refit(payload: bytes) -> Refit:
    """Inverse of :func:`encode_refit`; raises :class:`ArtefactError` for bytes it did not write."""
    try:
        data = json.loads(payload)
        if data.get("format") != REFIT_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {REFIT_FORMAT}")
        boosters = {}
        for kind, text in data["boosters"].items():
            booster = xgb.Booster()
            booster.load_model(bytearray(base64.b64decode(text)))
            boosters[kind] = booster
        weights = OptimizedWeights.from_json(data["weights"]) if data["tuned"] else Weights(**data["weights"])
        model = NumberModel(boosters, ModelMeta.from_json(data["meta"]))
        return Refit(date.fromisoformat(data["anchor"]), model, weights)
    except (ValueError, KeyError, TypeError, xgb.core.XGBoostError) as err:
        raise ArtefactError(f"a kept backtest refit could not be read: {err}") from err


def encode_tickets(tickets: pd.DataFrame) -> bytes:
    """One target's tickets (:data:`TICKET_COLUMNS`) as JSON bytes; floats keep every bit (``repr``)."""
    rows = [[int(v) for v in row[:-1]] + [float(row[-1])] for row in tickets[TICKET_COLUMNS].itertuples(index=False)]
    return json.dumps({"format": TICKETS_FORMAT, "rows": rows}).encode()


def decode_tickets(payload: bytes, target: date) -> pd.DataFrame:
    """Inverse of :func:`encode_tickets`: ``draw_date`` (the target) and :data:`TICKET_COLUMNS`, as generated."""
    try:
        data = json.loads(payload)
        if data.get("format") != TICKETS_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {TICKETS_FORMAT}")
        table = pd.DataFrame(data["rows"], columns=TICKET_COLUMNS)
    except (ValueError, KeyError, TypeError) as err:
        raise ArtefactError(f"kept backtest tickets for {target} could not be read: {err}") from err
    table = table.astype({**{c: "int64" for c in TICKET_COLUMNS[:-1]}, TICKET_COLUMNS[-1]: "float64"})
    table.insert(0, "draw_date", pd.Timestamp(target).as_unit("ns"))
    return table
