"""The scheduler's HTTP face: liveness, a health report and Prometheus metrics (DESIGN.md, Interfaces).

- ``GET /healthz``: liveness, ``{"status": "ok"}`` and nothing else, no token; answered from memory,
  and 503 ``{"status": "stale"}`` when the planner has not made a plan for ``plan_max_age_s``.
- ``GET /api/v1/scheduler/health``: jobs (next run, newest and last finished run, failure streak),
  what the plan has due, missed and to alert, open dead letters, missed drawings, recent alerts,
  uptime; ``status`` is ``attention`` when there are plan alerts, open dead letters or a failure
  streak of ``alert_after_failures``.
- ``GET /metrics``: Prometheus text, computed from the store at scrape time by one collector, with a
  histogram of run durations by job (``shiol_job_run_duration_seconds``) and the newest finished run's
  peak memory and CPU time (read from its manifest).

The last two need ``Authorization: Bearer <SHIOL_API_TOKEN>`` and answer 503 while no token is
configured. Store and plan reads run in a small pool of worker threads (a store lock wait never
blocks the event loop that Rocketry shares) with a deadline of ``READ_TIMEOUT_S``; a timeout or any
error there becomes a 503 naming the problem.
The server that serves the app, its socket and the cap live in :mod:`shiol_lib.scheduling.http_server`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shiol_lib.archive import folders as archive
from shiol_lib.domain.draw_calendar import iso_utc
from shiol_lib.domain.runs import MissedKind, RunStatus
from shiol_lib.errors import ShiolError
from shiol_lib.scheduling.http_server import CapExpensive
from shiol_lib.scheduling.plans import json_ready
from shiol_lib.settings import Settings
from shiol_lib.store.core import Store
from shiol_lib.store.monitoring import Monitoring, read_monitoring, run_durations
from shiol_lib.store.sources import last_answer_summary

log = logging.getLogger(__name__)

StoreFactory = Callable[[], Store]
PlanProvider = Callable[[], Mapping[str, Any]]
PlanAge = Callable[[], float | None]

# Final statuses only: counters never go down.
_COUNTED_STATUSES = sorted((s for s in RunStatus if s != RunStatus.RUNNING), key=lambda s: s.value)
MAX_CONNECTIONS = 64  # the report and metrics answer 503 beyond this many of them at once; /healthz never
READ_TIMEOUT_S = 5.0  # a health report or scrape waits this long for the store, then answers 503
READ_WORKERS = 4  # store reads at once; more wait (inside their deadline)
# Run durations in seconds: a data update takes ~15 s, the pipeline minutes, the run timeout 30 minutes.
DURATION_BUCKETS_S = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


def build_health_app(
    settings: Settings,
    *,
    store_factory: StoreFactory,
    plan_provider: PlanProvider,
    started_at: datetime,
    plan_age_s: PlanAge | None = None,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> Starlette:
    """The Starlette app serving ``/healthz``, ``/api/v1/scheduler/health`` and ``/metrics``.

    ``plan_provider`` returns the current ``Plan.as_dict()`` (from memory: it is called in a worker
    thread, but should not wait); ``started_at`` (timezone-aware) is when the scheduler started, for
    the uptime; ``plan_age_s`` says how old the planner's last plan is (None: none yet), and makes
    ``/healthz`` answer 503 past ``settings.plan_max_age_s``.
    """
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError(f"started_at {started_at!r} has no timezone; pass an aware datetime")
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(store_factory, plan_provider, started_at, runs_dir=settings.runs_dir))
    pool = ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="shiol-health")

    async def healthz(request: Request) -> Response:
        if plan_age_s is not None:
            age = plan_age_s()
            if age is None or age > settings.plan_max_age_s:
                return JSONResponse({"status": "stale"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def scheduler_health(request: Request) -> Response:
        denied = _check_token(request, settings.api_token)
        if denied is not None:
            return denied
        return await _guarded(
            "health report",
            lambda: JSONResponse(_health_report(plan_provider(), store_factory(), started_at, settings)),
            pool,
            read_timeout_s,
        )

    async def metrics(request: Request) -> Response:
        denied = _check_token(request, settings.api_token)
        if denied is not None:
            return denied
        return await _guarded(
            "metrics",
            lambda: Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST),
            pool,
            read_timeout_s,
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/v1/scheduler/health", scheduler_health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=[Middleware(CapExpensive, limit=MAX_CONNECTIONS)],
    )


class SchedulerCollector(Collector):
    """Computes the ``shiol_*`` metrics from the store (and the plan's job names) at each scrape."""

    def __init__(
        self,
        store_factory: StoreFactory,
        plan_provider: PlanProvider,
        started_at: datetime,
        *,
        runs_dir: Path | None = None,
    ) -> None:
        self._store_factory = store_factory
        self._plan_provider = plan_provider
        self._started_at = started_at
        self._runs_dir = runs_dir

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not touch the store."""
        return []

    def collect(self) -> Iterator[Metric]:
        """One family per metric, values read now."""
        plan = self._plan_provider()
        store = self._store_factory()
        mon = read_monitoring(store, plan.get("next", {}), recent=0)
        durations = run_durations(store)
        runs = CounterMetricFamily(
            "shiol_job_runs", "Runs of each job by final status (runs in flight excluded).", labels=["job", "status"]
        )
        running = GaugeMetricFamily("shiol_job_running", "Runs of each job in flight now.", labels=["job"])
        last_success = GaugeMetricFamily(
            "shiol_job_last_success_timestamp_seconds",
            "Unix time the job last succeeded (absent if it never did).",
            labels=["job"],
        )
        duration = GaugeMetricFamily(
            "shiol_job_last_run_duration_seconds",
            "Wall-clock duration of the job's newest finished run.",
            labels=["job"],
        )
        streak = GaugeMetricFamily(
            "shiol_job_consecutive_failures",
            "Failed, timed-out or crashed runs in a row, newest first.",
            labels=["job"],
        )
        histogram = HistogramMetricFamily(
            "shiol_job_run_duration_seconds", "Wall-clock duration of the job's finished runs.", labels=["job"]
        )
        peak = GaugeMetricFamily(
            "shiol_job_last_run_peak_rss_bytes",
            "Peak resident memory of the newest finished run's largest step.",
            labels=["job"],
        )
        cpu = GaugeMetricFamily(
            "shiol_job_last_run_cpu_seconds", "CPU seconds of the newest finished run's step processes.", labels=["job"]
        )
        for job, health in mon.jobs.items():
            for status in _COUNTED_STATUSES:
                runs.add_metric([job, status.value], health.counts.get(status, 0))
            running.add_metric([job], health.counts.get(RunStatus.RUNNING, 0))
            if health.last_success_at is not None:
                last_success.add_metric([job], health.last_success_at.timestamp())
            if health.last_finished is not None and health.last_finished.duration_s is not None:
                duration.add_metric([job], health.last_finished.duration_s)
            streak.add_metric([job], health.consecutive_failures)
            histogram.add_metric([job], *_buckets(durations.get(job, [])))
            used = _run_resources(self._runs_dir, health.last_finished.run_id if health.last_finished else None)
            if used and used["peak_rss_mb"] is not None:
                peak.add_metric([job], used["peak_rss_mb"] * 1024 * 1024)
            if used and used["cpu_s"] is not None:
                cpu.add_metric([job], used["cpu_s"])
        yield from (runs, running, last_success, duration, streak, histogram, peak, cpu)
        yield GaugeMetricFamily(
            "shiol_dead_letters_open", "Unresolved dead letters (retries used up).", value=len(mon.dead_letters)
        )
        yield CounterMetricFamily(
            "shiol_missed_draws",
            "Drawings recorded as missed (no pipeline success).",
            value=mon.missed_counts.get(MissedKind.DRAW, 0),
        )
        yield CounterMetricFamily(
            "shiol_missed_slots",
            "Scheduled slots recorded as missed (not run).",
            value=mon.missed_counts.get(MissedKind.SLOT, 0),
        )
        yield GaugeMetricFamily(
            "shiol_scheduler_uptime_seconds", "Seconds since the scheduler started.", value=_uptime_s(self._started_at)
        )


# --- the health report ---------------------------------------------------------------------------


def _health_report(plan: Mapping[str, Any], store: Store, started_at: datetime, settings: Settings) -> dict[str, Any]:
    with store.held():  # the monitoring and the sources' answers through one connection
        return _report(plan, store, started_at, settings)


def _report(plan: Mapping[str, Any], store: Store, started_at: datetime, settings: Settings) -> dict[str, Any]:
    next_runs: Mapping[str, str] = plan.get("next", {})
    mon = read_monitoring(store, next_runs)
    next_utc: Mapping[str, str | None] = plan.get("next_utc", {})
    jobs = {job: _job_report(mon, job, next_runs[job], next_utc.get(job), settings.runs_dir) for job in next_runs}
    attention = (
        bool(plan.get("alerts"))
        or bool(mon.dead_letters)
        or any(j["consecutive_failures"] >= settings.alert_after_failures for j in jobs.values())
    )
    return {
        "status": "attention" if attention else "ok",
        "at": plan.get("at"),
        "at_utc": plan.get("at_utc"),
        "started_at": json_ready(started_at),
        "started_at_utc": iso_utc(started_at),
        "uptime_s": round(_uptime_s(started_at), 3),
        "jobs": jobs,
        "draws": plan.get("draws"),
        "due": plan.get("due", []),
        "missed": plan.get("missed", []),
        "alerts": plan.get("alerts", []),
        "definitions": plan.get("definitions", []),  # the jobs file's problems (file, job, field, reason)
        "dead_letters": json_ready(mon.dead_letters),
        "missed_draws": {
            "total": mon.missed_counts.get(MissedKind.DRAW, 0),
            "recent": json_ready(mon.recent_missed_draws),
        },
        "missed_slots_total": mon.missed_counts.get(MissedKind.SLOT, 0),
        "recent_alerts": json_ready(mon.recent_alerts),
        "sources": last_answer_summary(store, datetime.now(UTC)),
    }


def _job_report(
    mon: Monitoring, job: str, next_run: str, next_run_utc: str | None, runs_dir: Path | None = None
) -> dict[str, Any]:
    health = mon.jobs[job]
    last = health.last_finished
    return {
        "last_finished_resources": _run_resources(runs_dir, last.run_id if last else None),
        "next_run": next_run,
        "next_run_utc": next_run_utc,
        "running": health.counts.get(RunStatus.RUNNING, 0),
        "last_run": json_ready(health.last_run),
        "last_finished": json_ready(health.last_finished),
        "last_success_at": json_ready(health.last_success_at),
        "last_success_at_utc": iso_utc(health.last_success_at) if health.last_success_at else None,
        "consecutive_failures": health.consecutive_failures,
        "runs_by_status": health.counts,
    }


def _buckets(values: list[float]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (``le`` labels, +Inf last) and the sum of ``values``."""
    buckets = [(floatToGoString(bound), float(sum(1 for v in values if v <= bound))) for bound in DURATION_BUCKETS_S]
    buckets.append(("+Inf", float(len(values))))
    return buckets, float(sum(values))


def _run_resources(runs_dir: Path | None, run_id: str | None) -> dict[str, Any] | None:
    """Peak memory and CPU time of a run, from its manifest (None when it has no readable manifest)."""
    if runs_dir is None or run_id is None:
        return None
    try:
        manifest = archive.read_manifest(archive.find_run_dir(runs_dir, run_id))
    except (ShiolError, OSError):
        return None
    return {
        "peak_rss_mb": manifest.peak_rss_mb,
        "cpu_s": manifest.cpu_s,
        "steps": {s.name: {"peak_rss_mb": s.peak_rss_mb, "cpu_s": s.cpu_s} for s in manifest.steps},
    }


def _uptime_s(started_at: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - started_at).total_seconds())


# --- access and errors ---------------------------------------------------------------------------


def _check_token(request: Request, token: str | None) -> Response | None:
    """None when the request carries the configured bearer token, else the response refusing it."""
    if not token:
        return JSONResponse(
            {"error": "this endpoint is disabled until an API token is configured: set SHIOL_API_TOKEN"},
            status_code=503,
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return JSONResponse(
            {"error": "missing or wrong token: send 'Authorization: Bearer <SHIOL_API_TOKEN>'"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="shiol"'},
        )
    return None


async def _guarded(what: str, produce: Callable[[], Response], pool: ThreadPoolExecutor, timeout_s: float) -> Response:
    """Run ``produce`` in ``pool`` for at most ``timeout_s``; a timeout or any error becomes a 503 naming it.

    A read that times out keeps its worker until the store's lock timeout ends it.
    """
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(pool, produce), timeout_s)
    except TimeoutError:
        log.warning("scheduler %s unavailable: no answer from the store within %g s", what, timeout_s)
        return JSONResponse(
            {"error": f"{what} unavailable: the store did not answer within {timeout_s:g} s"}, status_code=503
        )
    except Exception as err:  # noqa: BLE001 (a failing read must never take the server down)
        log.warning("scheduler %s unavailable: %s: %s", what, type(err).__name__, err)
        return JSONResponse({"error": f"{what} unavailable: {type(err).__name__}: {err}"}, status_code=503)
