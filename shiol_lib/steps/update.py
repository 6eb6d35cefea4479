"""Step 1 as its notebook (10_update_data) calls it: update the store, check the outcome, say what happened."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from shiol_lib.domain.history import data_hash
from shiol_lib.errors import DrawNotPublishedError, FetchError, NoSourceAnsweredError, UpdateError
from shiol_lib.settings import load_settings
from shiol_lib.steps.pipeline import open_step_store, save_metrics
from shiol_lib.store import Store

if TYPE_CHECKING:
    from shiol_lib.ingest.update import UpdateReport


def update_data(db_path: str, *, offline: bool, run_id: str) -> UpdateReport:
    """Update the store from the sources (settings from ``SHIOL_*``: a key never becomes a parameter)."""
    from shiol_lib.ingest.update import update_from_settings

    store = open_step_store(db_path)
    report = update_from_settings(store, load_settings(), offline=offline)
    frame = store.read_draws()
    save_metrics(
        store,
        run_id,
        "update_data",
        {
            "draws": int(len(frame)),
            "last_draw": frame["draw_date"].max().date().isoformat() if len(frame) else None,
            "draws_sha256": data_hash(frame) if len(frame) else None,
        },
    )
    return report


def check_update(store: Store, report: UpdateReport, *, expect_draw_date: str = "") -> None:
    """Fail the step on rejected records, on no source answering, and on an expected drawing missing.

    Raises :class:`UpdateError` (validation) for rejected records; :class:`NoSourceAnsweredError` (a
    :class:`FetchError`) when online and no network source answered, unless the expected drawing is
    stored already; :class:`FetchError` when the expected drawing is missing offline; and
    :class:`DrawNotPublishedError` when sources answered but have not published it yet (the scheduler
    then waits and retries).
    """
    if report.rejected:
        raise UpdateError(
            f"{len(report.rejected)} record(s) rejected; nothing from their batch was written: "
            + "; ".join(r.as_text() for r in report.rejected[:3]),
            report,
        )
    wanted = date.fromisoformat(expect_draw_date) if expect_draw_date else None
    if wanted is not None and wanted in store.draw_dates():
        return
    if report.no_source_answered:
        asks = report.source_asks()
        raise NoSourceAnsweredError(
            "no source answered: " + "; ".join(f"{name} {outcome}" for name, (_, outcome) in asks.items()),
            attempts=[f"{a.source} {a.request}: {a.outcome}" for a in report.attempts],
        )
    if wanted is None:
        return
    if report.sources_failed or report.offline:
        raise FetchError(f"drawing {wanted} is not in the store and no source could be asked for it", url="")
    pending = [p for p in report.pending if p.draw_date == wanted]
    said = f" ({pending[0].source} says {pending[0].status})" if pending else ""
    raise DrawNotPublishedError(f"the result of drawing {wanted} is not published yet{said}")


def update_findings(store: Store, report: UpdateReport) -> str:
    """Step 1 in plain words: what was fetched, from where, and what the store holds now."""
    frame = store.read_draws()
    days = ", ".join(d.isoformat() for d in report.new_draws[:8]) or "none"
    lines = [
        f"The store holds **{len(frame)} drawings**, {frame['draw_date'].min().date()} .. "
        f"**{frame['draw_date'].max().date()}**."
        if len(frame)
        else "The store holds **no drawings**.",
        f"New drawings: **{len(report.new_draws)}** ({days}); backfilled: {len(report.backfilled)}; "
        f"seeded from the bundled snapshot: {report.seeded}.",
        "Sources: "
        + (
            "offline, only the bundled snapshot was used."
            if report.offline
            else "; ".join(f"{a.source} {a.outcome}" for a in report.attempts[:6]) or "none asked."
        ),
        f"Expected drawings still missing: {len(report.still_missing)}"
        + (f" ({', '.join(d.isoformat() for d in report.still_missing[:6])})." if report.still_missing else "."),
    ]
    if report.rejected:
        lines.append(f"**{len(report.rejected)} record(s) rejected**; nothing from their batch was written.")
    return "\n".join(f"- {line}" for line in lines)


def draws_per_year(store: Store) -> pd.DataFrame:
    """Stored drawings per calendar year (a quick completeness check)."""
    frame = store.read_draws()
    return frame.groupby(frame["draw_date"].dt.year).size().rename("drawings").to_frame()
