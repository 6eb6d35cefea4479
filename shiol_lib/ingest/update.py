"""The data update: seed, fetch new drawings, backfill missing ones, and report what happened.

Sources are tried in order (MUSL, NY Open Data, the bundled snapshot); each answers only the dates
still wanted. A source batch with any rejected record writes nothing; a source that fails (no answer,
an error status, a body over the size cap or not in its format) is reported and the next one is asked.
A MUSL answer about another drawing than the ``DrawDate`` asked is reported, and that date is asked of
NY Open Data. Re-running an update that found everything changes nothing.

"Nothing new" and "no source answered" differ: when online, every network source that was asked
failed (no answer, an error status, a body not in its format), the report's ``outcome`` is ``no
source answered`` even if the bundled snapshot filled a gap. ``--offline`` asks no network source:
that is never "no source answered". Each network source's last ask and last answer are recorded in
the store (``store.sources``).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

from shiol_lib.domain.draw_calendar import missing_draws, unfetched_draws  # re-exported: they lived here
from shiol_lib.errors import FetchError
from shiol_lib.ingest.records import Batch, Misdated, Pending, Rejection, merge_batches
from shiol_lib.ingest.sources import (
    Attempt,
    BundledSource,
    HttpClient,
    MuslSource,
    NySource,
)
from shiol_lib.settings import Settings
from shiol_lib.store import Conflict, Store
from shiol_lib.store.sources import record_source_asks

log = logging.getLogger(__name__)

NY_LOOKBACK_DRAWS = 5
NETWORK_SOURCES = ("musl", "ny")


@dataclass
class UpdateReport:
    """Everything one update did, for people (``as_text``) and scripts (``as_dict``)."""

    update_id: str
    started_at: datetime
    offline: bool
    seeded: int = 0
    new_draws: list[date] = field(default_factory=list)
    backfilled: list[date] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    misdated: list[Misdated] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    still_missing: list[date] = field(default_factory=list)
    sources_used: list[str] = field(default_factory=list)
    finished_at: datetime | None = None

    @property
    def sources_failed(self) -> bool:
        """True when a network source was wanted and none of them answered."""
        network = [a for a in self.attempts if a.source in NETWORK_SOURCES]
        return bool(network) and all(a.outcome.startswith(("failed", "skipped")) for a in network)

    def source_asks(self) -> dict[str, tuple[bool, str]]:
        """Each network source actually asked (not skipped): whether it answered, and its last outcome.

        A source answered when any of its requests got a response in its format (drawings, a page of
        records, a 404 "no record", a drawing of another date); errors, timeouts and malformed bodies
        did not answer.
        """
        asks: dict[str, tuple[bool, str]] = {}
        for attempt in self.attempts:
            if attempt.source not in NETWORK_SOURCES or attempt.outcome.startswith("skipped"):
                continue
            answered = not attempt.outcome.startswith("failed") or _misdated_text(attempt.outcome)
            before = asks.get(attempt.source, (False, ""))[0]
            asks[attempt.source] = (before or answered, attempt.outcome)
        return asks

    @property
    def no_source_answered(self) -> bool:
        """True when online, at least one network source was asked, and none answered.

        An offline update asks none (the bundled snapshot is not a source answering new data), and an
        update that wanted nothing asked none: neither is "no source answered".
        """
        asks = self.source_asks()
        return not self.offline and bool(asks) and not any(answered for answered, _ in asks.values())

    @property
    def outcome(self) -> str:
        """``no source answered``, ``offline``, ``updated`` (drawings written) or ``nothing new``."""
        if self.no_source_answered:
            return "no source answered"
        if self.seeded or self.new_draws or self.backfilled:
            return "updated"
        return "offline" if self.offline else "nothing new"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (dates and instants as ISO strings), with the ``outcome``."""
        data = asdict(self)
        data["outcome"] = self.outcome
        return json.loads(json.dumps(data, default=lambda v: v.isoformat()))

    def as_text(self) -> str:
        """A readable multi-line summary."""
        lines = [f"data update {self.update_id} ({'offline' if self.offline else 'online'}): {self.outcome}"]
        if self.seeded:
            lines.append(f"  seeded the empty store with {self.seeded} draws from the bundled snapshot")
        lines.append(f"  new drawings: {len(self.new_draws)} {_dates(self.new_draws)}")
        lines.append(f"  backfilled drawings: {len(self.backfilled)} {_dates(self.backfilled)}")
        lines.append(f"  sources used: {', '.join(self.sources_used) or 'none'}")
        for attempt in self.attempts:
            lines.append(f"    [{attempt.source}] {attempt.request}: {attempt.outcome}")
        for pending in self.pending:
            lines.append(f"  not yet published: {pending.draw_date} ({pending.source} says {pending.status})")
        for wrong in self.misdated:
            lines.append(f"  wrong drawing answered: {wrong.as_text()}; {wrong.requested} asked of the next source")
        lines.append(f"  rejected records: {len(self.rejected)}")
        lines.extend(f"    {r.as_text()}" for r in self.rejected)
        lines.append(f"  conflicts (stored values kept): {len(self.conflicts)}")
        lines.extend(f"    [{c.source}] {c.draw_date}: stored {c.stored} / offered {c.offered}" for c in self.conflicts)
        if self.still_missing:
            lines.append(f"  expected drawings still missing: {len(self.still_missing)} {_dates(self.still_missing)}")
        return "\n".join(lines)


def _dates(days: list[date], limit: int = 12) -> str:
    if not days:
        return ""
    shown = ", ".join(d.isoformat() for d in days[:limit])
    return f"({shown}{', ...' if len(days) > limit else ''})"


def update_draws(
    store: Store,
    *,
    musl: MuslSource | None,
    ny: NySource | None,
    now: datetime | None = None,
    offline: bool = False,
    musl_max_dates: int = 12,
    bundled: BundledSource | None = None,
) -> UpdateReport:
    """Run one data update against ``store`` and return its report (also recorded in the store).

    ``bundled`` is the last source and the seed of an empty store (default: the packaged snapshot).
    """
    now = now or datetime.now(UTC)
    report = UpdateReport(update_id=uuid.uuid4().hex[:12], started_at=now, offline=offline)
    bundled = bundled or BundledSource()

    stored = store.draw_dates()
    if not stored:
        seed = bundled.fetch(now=now)
        report.rejected.extend(seed.rejections)
        if not seed.ok:
            report.attempts.append(Attempt("bundled", "seed the empty store", _outcome(seed)))
        else:
            report.seeded = len(store.apply_draws(seed.draws, source=seed.source, fetched_at=now).inserted)
            report.sources_used.append(seed.source)
        stored = store.draw_dates()
    latest_before = max(stored) if stored else None
    wanted = set(missing_draws(stored)) | set(unfetched_draws(stored, now))

    if not offline:
        if musl is not None and wanted:
            wanted -= _from_musl(musl, sorted(wanted, reverse=True)[:musl_max_dates], store, report, latest_before, now)
        if ny is not None and wanted:
            wanted -= _from_ny(ny, wanted, latest_before, store, report, now)
    if wanted:
        batch = bundled.fetch(now=now)
        batch.draws = [d for d in batch.draws if d.draw_date in wanted]
        got = _apply(store, batch, report, latest_before, now)
        outcome = _outcome(batch) if batch.rejections else f"ok: {len(got)} draws"
        report.attempts.append(Attempt("bundled", f"{len(wanted)} wanted dates", outcome))
        wanted -= got
    report.new_draws.sort()
    report.backfilled.sort()
    report.still_missing = sorted(set(missing_draws(store.draw_dates())))
    report.finished_at = datetime.now(UTC)
    if not offline:
        record_source_asks(store, report.source_asks(), at=now)
    store.record_update(
        report.update_id,
        report.started_at,
        report.finished_at,
        offline=offline,
        counts={
            "new": len(report.new_draws),
            "backfilled": len(report.backfilled),
            "rejected": len(report.rejected),
            "conflicts": len(report.conflicts),
        },
        report_json=json.dumps(report.as_dict()),
    )
    return report


def update_from_settings(store: Store, settings: Settings, *, offline: bool = False) -> UpdateReport:
    """:func:`update_draws` with the sources, timeouts and retries the settings configure."""
    http = HttpClient.from_settings(settings)
    return update_draws(
        store,
        musl=MuslSource(settings.musl_base_url, settings.musl_api_key, http),
        ny=NySource(settings.ny_base_url, http),
        offline=offline,
        musl_max_dates=settings.musl_max_dates,
    )


def _from_musl(
    musl: MuslSource, dates: list[date], store: Store, report: UpdateReport, latest_before: date | None, now: datetime
) -> set[date]:
    if not musl.configured:
        report.attempts.append(Attempt("musl", "GET /v3/numbers", "skipped: no API key (SHIOL_MUSL_API_KEY)"))
        return set()
    batches: list[Batch] = []
    asks: list[date | None] = list(dates)
    if latest_before is not None and dates and dates[0] > latest_before:
        asks[0] = None  # the newest wanted drawing: ask for the latest, as a scheduled update would
    for day in asks:
        label = f"GET /v3/numbers DrawDate={day.isoformat()}" if day else "GET /v3/numbers (latest)"
        try:
            batch = musl.fetch(day, now=now)
        except FetchError as err:
            if err.status == 404:
                report.attempts.append(Attempt("musl", label, "no record (HTTP 404)"))
                continue
            report.attempts.append(Attempt("musl", label, f"failed: {err}; falling back"))
            break
        if batch.misdated:
            report.misdated.extend(batch.misdated)
            for wrong in batch.misdated:
                log.warning("MUSL answered the drawing of %s for DrawDate %s", wrong.answered, wrong.requested)
            report.attempts.append(Attempt("musl", label, _misdated_outcome(batch.misdated[0])))
            continue  # that date stays wanted: NY Open Data is asked for it
        report.attempts.append(Attempt("musl", label, _outcome(batch)))
        batches.append(batch)  # a failed body's rejection keeps every MUSL answer of this update unwritten
        if batch.failure is not None:
            break
    return _apply(store, merge_batches("musl", batches), report, latest_before, now, keep=set(dates))


def _from_ny(
    ny: NySource, wanted: set[date], latest_before: date | None, store: Store, report: UpdateReport, now: datetime
) -> set[date]:
    got: set[date] = set()
    newer = sorted(d for d in wanted if latest_before is None or d > latest_before)
    older = sorted(wanted - set(newer))
    queries = []
    if newer and latest_before is not None:
        # Look back a few drawings stored before this update, so a source that disagrees with the
        # store is noticed; counting from MUSL's fresh ones would skip the gap below them.
        stored = [d for d in store.draw_dates() if d <= latest_before]
        after = stored[-NY_LOOKBACK_DRAWS - 1] if len(stored) > NY_LOOKBACK_DRAWS else latest_before
        queries.append((f"records after {after.isoformat()}", lambda: ny.fetch_after(after, now=now)))
    if older:
        queries.append((f"records of {len(older)} missing dates", lambda: ny.fetch_dates(older, now=now)))
    for label, query in queries:
        try:
            batch = query()
        except FetchError as err:
            report.attempts.append(Attempt("ny", label, f"failed: {err}; falling back"))
            continue
        report.attempts.append(Attempt("ny", label, _outcome(batch)))
        got |= _apply(store, batch, report, latest_before, now, keep=wanted)
    return got


def _outcome(batch: Batch) -> str:
    if batch.failure is not None:
        return f"failed: {batch.failure}; falling back"
    parts = [f"ok: {len(batch.draws)} draws"]
    if batch.rejections:
        parts.append(f"{len(batch.rejections)} rejected, batch not written")
    if batch.pending:
        parts.append(f"{len(batch.pending)} not yet complete")
    return ", ".join(parts)


def _misdated_text(outcome: str) -> bool:
    """A MUSL answer about another drawing: the source answered, just not about the date asked."""
    return outcome.startswith("failed: answered the drawing of")


def _misdated_outcome(wrong: Misdated) -> str:
    return (
        f"failed: answered the drawing of {wrong.answered.isoformat()} for DrawDate "
        f"{wrong.requested.isoformat()}; asking NY Open Data for {wrong.requested.isoformat()}"
    )


def _apply(
    store: Store,
    batch: Batch,
    report: UpdateReport,
    latest_before: date | None,
    now: datetime,
    *,
    keep: set[date] | None = None,
) -> set[date]:
    """Write a valid batch (all or nothing); return the dates now stored from it."""
    report.rejected.extend(batch.rejections)
    report.pending.extend(batch.pending)
    if batch.rejections:
        return set()
    result = store.apply_draws(batch.draws, source=batch.source, fetched_at=now)
    report.conflicts.extend(result.conflicts)
    if result.inserted and batch.source not in report.sources_used:
        report.sources_used.append(batch.source)
    for day in result.inserted:
        (report.new_draws if latest_before is None or day > latest_before else report.backfilled).append(day)
    conflicted = {c.draw_date for c in result.conflicts}
    answered = {d.draw_date for d in batch.draws} - conflicted
    return answered if keep is None else answered & keep
