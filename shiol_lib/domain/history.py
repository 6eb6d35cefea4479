"""The draw history as analysis input: checked, cut at a target date within its era, and hashed.

Every analysis function (features, model, weights, tickets, validation) starts from the canonical draws
DataFrame of :mod:`shiol_lib.ingest.records` and passes it through :func:`check_draw_frame`; the era and the
"strictly before the target" cut are made here, in one place, so no caller can get them subtly wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from shiol_lib.domain.draw_calendar import draw_after
from shiol_lib.domain.draws import DRAW_COLUMNS, normalize_draw_frame
from shiol_lib.domain.game import MATRICES, WHITE_COUNT, Matrix, matrix_for
from shiol_lib.errors import ArtefactMismatchError, DrawFrameError, InsufficientHistoryError, UnknownMatrixError

WHITE_COLUMNS = ["n1", "n2", "n3", "n4", "n5"]
NUMBER_COLUMNS = [*WHITE_COLUMNS, "pb"]
_SHOWN = 5


def _dates_text(dates: pd.Series) -> str:
    shown = ", ".join(pd.Timestamp(d).strftime("%Y-%m-%d") for d in dates.iloc[:_SHOWN])
    more = f" and {len(dates) - _SHOWN} more" if len(dates) > _SHOWN else ""
    return shown + more


def check_draw_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the canonical copy of a draws DataFrame, or raise :class:`DrawFrameError` naming the fault.

    Checks: every column of ``DRAW_COLUMNS`` present, no missing date, no NaN or fractional number,
    one row per date, five distinct white balls and a Powerball inside the matrix of the date.
    White balls are returned ascending and rows sorted by date.
    """
    missing = [c for c in DRAW_COLUMNS if c not in frame.columns]
    if missing:
        raise DrawFrameError(f"draws frame lacks column(s) {missing}; the analysis needs {DRAW_COLUMNS}")
    if _is_canonical(frame):
        out = frame[DRAW_COLUMNS].reset_index(drop=True)  # a new frame; the caller's is never changed
        dates = out["draw_date"]
    else:
        dates = _checked_dates(frame)
        _check_numbers(frame, dates)
        out = normalize_draw_frame(frame.assign(draw_date=dates))
    duplicated = out["draw_date"].duplicated(keep=False)
    if duplicated.any():
        shown = _dates_text(out["draw_date"][duplicated].drop_duplicates())
        raise DrawFrameError(f"draw dates appear more than once: {shown}")
    whites = np.sort(out[WHITE_COLUMNS].to_numpy(), axis=1)
    out[WHITE_COLUMNS] = whites
    _check_ranges(out, whites)
    return out


def _is_canonical(frame: pd.DataFrame) -> bool:
    """Whether the frame already has the canonical dtypes, no missing date, and ascending dates."""
    dtypes = frame.dtypes
    return (
        dtypes["draw_date"] == np.dtype("datetime64[ns]")
        and all(dtypes[c] == np.dtype("int64") for c in NUMBER_COLUMNS)
        and isinstance(dtypes["multiplier"], pd.Int64Dtype)
        and not frame["draw_date"].isna().any()
        and frame["draw_date"].is_monotonic_increasing
    )


def _checked_dates(frame: pd.DataFrame) -> pd.Series:
    dates = pd.to_datetime(frame["draw_date"], errors="coerce")
    if dates.isna().any():
        rows = list(frame.index[dates.isna()][:_SHOWN])
        raise DrawFrameError(f"draw_date is missing or not a date in {int(dates.isna().sum())} row(s), index {rows}")
    return dates


def _check_numbers(frame: pd.DataFrame, dates: pd.Series) -> None:
    for column in NUMBER_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            raise DrawFrameError(
                f"column {column} is NaN/missing on {int(bad.sum())} drawing(s): {_dates_text(dates[bad])}"
            )
        fractional = values != np.floor(values)
        if fractional.any():
            raise DrawFrameError(f"column {column} is not a whole number on {_dates_text(dates[fractional])}")


def _check_ranges(out: pd.DataFrame, whites: np.ndarray) -> None:
    if out.empty:
        return
    first = out["draw_date"].iloc[0].date()
    matrix_for(first)  # raises UnknownMatrixError for a date before the first known matrix
    eras = era_codes(out["draw_date"])
    white_max = np.array([MATRICES[i].white_max for i in eras])
    pb_max = np.array([MATRICES[i].pb_max for i in eras])
    pb = out["pb"].to_numpy()
    bad = (whites[:, 0] < 1) | (whites[:, -1] > white_max) | (np.diff(whites, axis=1) == 0).any(axis=1)
    bad |= (pb < 1) | (pb > pb_max)
    if bad.any():
        raise DrawFrameError(
            f"{int(bad.sum())} drawing(s) have white balls that are not {WHITE_COUNT} distinct numbers inside "
            f"their matrix, or a Powerball outside it: {_dates_text(out['draw_date'][bad])}"
        )


def era_codes(dates: pd.Series) -> np.ndarray:
    """Index into :data:`game.MATRICES` of each date (by date, never by the values seen)."""
    days = pd.to_datetime(dates).to_numpy(dtype="datetime64[D]")
    firsts = np.array([m.first_date for m in MATRICES], dtype="datetime64[D]")
    if len(days) and days.min() < firsts[0]:
        raise UnknownMatrixError(
            f"no known Powerball matrix for {pd.Timestamp(days.min()).date().isoformat()}: the workbench "
            f"knows draws dated {MATRICES[0].first_date.isoformat()} onward"
        )
    return np.searchsorted(firsts, days, side="right") - 1


def era_cut(frame: pd.DataFrame, matrix: Matrix, before: date | None = None) -> pd.DataFrame:
    """The (checked) drawings of ``matrix``'s era, dated strictly before ``before`` when it is given.

    The one place where history is cut to an era: every analysis function reads its drawings through
    this (or :func:`era_history`), so none can mix matrices or look at the target.
    """
    checked = check_draw_frame(frame)
    days = checked["draw_date"].dt.date
    keep = days >= matrix.first_date
    if matrix.last_date is not None:
        keep &= days <= matrix.last_date
    if before is not None:
        keep &= days < before
    return checked.loc[keep].reset_index(drop=True)


def era_history(frame: pd.DataFrame, target_date: date) -> tuple[Matrix, pd.DataFrame]:
    """The matrix of ``target_date`` and the (checked) drawings of that era dated strictly before it."""
    matrix = matrix_for(target_date)
    return matrix, era_cut(frame, matrix, target_date)


def frame_before(frame: pd.DataFrame, target_date: date) -> pd.DataFrame:
    """The (checked) drawings of every era dated strictly before ``target_date``."""
    checked = check_draw_frame(frame)
    return checked.loc[checked["draw_date"].dt.date < target_date].reset_index(drop=True)


def next_target(frame: pd.DataFrame) -> date:
    """The drawing scheduled after the last one of ``frame`` (the default prediction target)."""
    checked = check_draw_frame(frame)
    if checked.empty:
        raise InsufficientHistoryError("the draws frame is empty: no drawing to predict after", available=0, needed=1)
    return draw_after(checked["draw_date"].iloc[-1].date())


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of the canonical draws content: every date, number and multiplier, oldest first.

    The hashed bytes are, per drawing, the date (days since 1970-01-01), the five white balls ascending,
    the Powerball and the multiplier (-1 when none) as little-endian int64, after a format tag.
    """
    digest = hashlib.sha256(_HASH_TAG)
    digest.update(_hash_rows(check_draw_frame(frame)).tobytes())
    return digest.hexdigest()


def prefix_hashes(frame: pd.DataFrame, cuts: Sequence[date]) -> dict[date, str]:
    """For each cut, :func:`data_hash` of the drawings dated strictly before it, in one pass over the rows."""
    checked = check_draw_frame(frame)
    rows = _hash_rows(checked)
    days = checked["draw_date"].to_numpy(dtype="datetime64[D]")
    digest, done, out = hashlib.sha256(_HASH_TAG), 0, {}
    for cut in sorted(set(cuts)):
        end = int(np.searchsorted(days, np.datetime64(cut, "D"), side="left"))
        digest.update(rows[done:end].tobytes())
        done = end
        out[cut] = digest.copy().hexdigest()
    return out


_HASH_TAG = b"shiol-draws/1\n"


def _hash_rows(checked: pd.DataFrame) -> np.ndarray:
    """The hashed rows of checked draws: date, numbers, multiplier (-1 when none), little-endian int64."""
    days = checked["draw_date"].to_numpy(dtype="datetime64[D]").astype("<i8")
    numbers = checked[NUMBER_COLUMNS].to_numpy(dtype="<i8")
    multiplier = checked["multiplier"].fillna(-1).to_numpy(dtype="<i8")
    return np.ascontiguousarray(np.column_stack([days, numbers, multiplier]).astype("<i8"))


def check_artefact_data(
    frame: pd.DataFrame, *, stored_hash: str, last_date: date, what: str, path: Path | None = None
) -> None:
    """Refuse an artefact built from other draws than ``frame``'s.

    An artefact records the hash of the drawings it was built from (all dated up to ``last_date``).
    ``frame`` may extend them with later drawings; any difference up to ``last_date`` raises
    :class:`ArtefactMismatchError`.
    """
    checked = check_draw_frame(frame)
    prefix = checked.loc[checked["draw_date"].dt.date <= last_date]
    found = data_hash(prefix)
    if found != stored_hash:
        where = f" at {path}" if path is not None else ""
        raise ArtefactMismatchError(
            f"{what}{where} was built from other draws: its data hash is {stored_hash[:12]}... over the drawings "
            f"up to {last_date.isoformat()}, but the given draws up to that date ({len(prefix)} drawings) hash to "
            f"{found[:12]}...; rebuild the {what} from these draws"
        )
