"""The archive at scale: what the workbench costs after 100, 1,000 and 3,000 runs (two years of operation).

Each size is built once through the real run lifecycle (:mod:`archive_build`) into a cache folder and
grown from the size before (100 -> 1,000 -> 3,000). Every measurement runs on a working copy (heavy
files hard-linked, the ledger, the store and its folder copied), so the cache stays as built:

* ``verify_s``: ``shiol runs verify --json`` as a process (full: every byte hashed);
  ``verify_since_last_s``: ``shiol runs verify --since-last --json`` right after it;
* ``close_s``: one more run closed (a data update, the whole lifecycle) and ``dashboard_s``: the
  dashboard written at that close (``write_index(incremental=True)``, best of 3), ``first_page_kb``
  (``runs/index.html``), ``chunks_kb`` (``runs/_index/``), ``pages_full_s`` (``shiol runs pages``:
  every page rewritten, as prune does);
* ``list_s`` / ``list_json_s``: ``shiol runs list`` and ``--json`` as processes (best of 3);
* ``plan_s``: one planner cycle (``Scheduler.plan``: the history read and the plan; best of 5), its
  ``history_s`` alone; ``health_s``: ``GET /api/v1/scheduler/health`` on the real Starlette app served
  by uvicorn on 127.0.0.1 (best of 5); ``publish_s``: one snapshot publish;
* ``store_mb`` / ``archive_mb``: on disk; at the largest size also ``prune_s``, ``archive_pruned_mb``
  and ``verify_pruned_s``: ``shiol runs prune --keep-days`` keeping the last 90 simulated days (what
  a job's ``keep_days`` does for its own runs; built-in jobs take the default) and a full verify after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import archive_build

SIZES = (100, 1_000, 3_000)
QUICK_SIZES = (100, 300)
KEEP_DAYS = 90
TOKEN = "bench-token"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    return {**env, "SHIOL_HOME": str(home), "SHIOL_HTTP_RETRIES": "0", **extra}


def _process_s(home: Path, *args: str, repeat: int = 1, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Best wall time of ``shiol ARGS`` as a process (the CLI's import cost counts), and its last stdout."""
    best, out = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "shiol_lib.cli", *args], env=_env(home), capture_output=True, text=True, timeout=1800
        )
        best = min(best, time.perf_counter() - started)
        if done.returncode not in ok:
            raise RuntimeError(f"shiol {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        out = done.stdout
    return best, out


def _du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return round(total / 1e6, 1)


def _grow(cache: Path, runs: list[archive_build.PlannedRun], sizes: tuple[int, ...], n: int) -> Path:
    """The cached home holding the first ``n`` runs, built from the largest cached smaller size."""
    home = cache / f"n{n}"
    if (home / "built").is_file():
        return home
    shutil.rmtree(home, ignore_errors=True)
    smaller = [s for s in sizes if s < n and (cache / f"n{s}" / "built").is_file()]
    start = 0
    if smaller:
        start = max(smaller)
        _working_copy(cache / f"n{start}", home)
        (home / "built").unlink()
    started = time.perf_counter()
    archive_build.build(home, runs[:n], start=start)
    print(f"archive: built runs {start}..{n} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    (home / "built").write_text(str(n))
    return home


def _working_copy(source: Path, target: Path) -> None:
    """Hard-link the archive's files (only ever replaced by rename), copy what is written in place."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-al", str(source), str(target)], check=True)
    for path in [target / "runs" / "ledger.jsonl", *(target / "var").glob("*")]:
        if path.is_file():
            data = path.read_bytes()
            path.unlink()
            path.write_bytes(data)


def _time_best(call: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _in_process(home: Path, now: Any) -> dict[str, float]:
    """The dashboard at a run close, the planner, the health API and a snapshot publish, in this process."""
    from shiol_lib.jobs.catalog import performance_jobs
    from shiol_lib.reports import dashboard
    from shiol_lib.scheduling.health import build_health_app
    from shiol_lib.scheduling.http_server import make_server
    from shiol_lib.scheduling.scheduler import Scheduler, read_history
    from shiol_lib.settings import load_settings
    from shiol_lib.store import open_store

    settings = load_settings(_env(home, SHIOL_API_TOKEN=TOKEN, SHIOL_API_PORT=str(_free_port())))
    store = open_store(settings.db_path, settings.snapshot_path)
    figures: dict[str, float] = {}
    started = time.perf_counter()
    step = archive_build.catalog.UPDATE_DATA
    plan = archive_build.PlannedRun(now, "data_update", (step,), archive_build.Trigger.ON_TIME)
    archive_build.build_one(home, plan)
    figures["close_s"] = time.perf_counter() - started

    def close_pages() -> None:
        dashboard.write_index(
            settings.runs_dir,
            retry_backoff_s=settings.retry_backoff_s,
            performance_jobs=performance_jobs(),
            incremental=True,
            **dashboard.store_context(store),
        )

    figures["dashboard_s"] = _time_best(close_pages, 3)
    scheduler = Scheduler(settings)
    at = now + timedelta(hours=1)
    figures["plan_s"] = _time_best(lambda: scheduler.plan(at), 5)
    figures["history_s"] = _time_best(lambda: read_history(store, at), 5)
    plan_dict = scheduler.plan(at).as_dict()
    app = build_health_app(
        settings,
        store_factory=lambda: open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=2.0),
        plan_provider=lambda: plan_dict,
        started_at=now,
    )
    server = make_server(app, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://{settings.api_host}:{settings.api_port}/api/v1/scheduler/health"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)

        def get() -> None:
            with urllib.request.urlopen(request, timeout=30) as answer:
                json.loads(answer.read())

        figures["health_s"] = _time_best(get, 5)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    figures["publish_s"] = _time_best(store.publish, 3)
    return figures


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(cache: Path, *, quick: bool = False, work: Path | None = None) -> dict[str, Any]:
    """Every figure for each size (see the module's docstring)."""
    sizes = QUICK_SIZES if quick else SIZES
    runs = archive_build.schedule(max(sizes))
    work = work or cache / "work"
    results: dict[str, Any] = {}
    for n in sizes:
        home = _working_copy_of(_grow(cache, runs, sizes, n), work)
        row: dict[str, Any] = {"runs": n, "days": (runs[n - 1].at - runs[0].at).days + 1}
        row["verify_s"], out = _process_s(home, "runs", "verify", "--json")
        row["files"] = json.loads(out)["files"]
        row["verify_since_last_s"], out = _process_s(home, "runs", "verify", "--since-last", "--json")
        row["since_last_hashed"] = json.loads(out)["files_hashed"]
        row.update({k: round(v, 4) for k, v in _in_process(home, runs[n - 1].at + timedelta(hours=2)).items()})
        row["first_page_kb"] = round((home / "runs" / "index.html").stat().st_size / 1e3, 1)
        row["chunks_kb"] = round(sum(p.stat().st_size for p in (home / "runs" / "_index").iterdir()) / 1e3, 1)
        row["list_s"], _ = _process_s(home, "runs", "list", repeat=3)
        row["list_json_s"], _ = _process_s(home, "runs", "list", "--json", repeat=3)
        row["pages_full_s"], _ = _process_s(home, "runs", "pages")
        row["store_mb"] = _du_mb(home / "var")
        row["archive_mb"] = _du_mb(home / "runs")
        if n == max(sizes):
            # the CLI counts days to the real clock; the simulated two years ended earlier
            keep = KEEP_DAYS + (datetime.now(UTC) - runs[n - 1].at).days
            row["prune_s"], _ = _process_s(home, "runs", "prune", "--keep-days", str(keep))
            row["pruned_runs"] = len(list((home / "runs").glob("*/*/*/PRUNED")))
            row["archive_pruned_mb"] = _du_mb(home / "runs")
            row["verify_pruned_s"], _ = _process_s(home, "runs", "verify", "--json")
        results[str(n)] = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        print(f"archive {n}: {json.dumps(results[str(n)])}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return results


def _working_copy_of(home: Path, work: Path) -> Path:
    target = work / home.name
    work.mkdir(parents=True, exist_ok=True)
    _working_copy(home, target)
    return target
