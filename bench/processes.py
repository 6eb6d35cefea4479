"""Benchmarks of whole processes: the notebook pipeline, the idle scheduler, CLI start-up, the data update.

Each measurement starts fresh processes on a temp home, the way a person or the scheduler would, with the
``shiol_lib`` that this process imported (so ``PYTHONPATH`` at an export of an older commit measures that
commit) and the temp home as the working folder (``python -m`` puts the working folder first on the path).
CPU seconds are those of the process tree (``RUSAGE_CHILDREN``), less sensitive to other users than wall
time; the 1-minute load average goes with every figure in ``bench/run.py``'s output. Nothing is asserted.

* ``notebook_pipeline``: the pipeline job as ``shiol run pipeline --offline`` or the scheduler runs it
  (``jobs.run.run_job`` in a fresh process: papermill, one kernel per step, archive and reports), with
  the same step settings as the in-process measurement; wall, CPU of the tree, and per step the manifest's
  duration, peak RSS and CPU of the step's processes (the kernel and, where it runs, papermill).
* ``idle_scheduler``: ``python -m shiol_lib.scheduling.app`` holding three jobs with nothing due on a
  seeded store: CPU % of one core over a window after an 8 s settle, RSS and USS at its end; then
  ``bench/scheduler_probe.py`` for the module count of the same idle process after a health scrape.
* ``cli_latencies``: ``shiol --help``, ``shiol status``, ``shiol schedule plan --json`` on a seeded store,
  median wall and CPU of ``repeat`` runs.
* ``data_update``: ``shiol update-data --offline`` on an empty home (creates and seeds the store).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

import shiol_lib

BENCH = Path(__file__).resolve().parent
NEVER = "0 3 1 1 *"  # 03:00 on January 1st: no job due while measuring
MB = 2**20
CLI_COMMANDS = {"help": ("--help",), "status": ("status",), "schedule_plan_json": ("schedule", "plan", "--json")}


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SHIOL_HOME": str(home),
        "PYTHONPATH": str(Path(shiol_lib.__file__).resolve().parents[1]),
        "SHIOL_PIPELINE_CRON": NEVER,
        "SHIOL_UPDATE_CRON": NEVER,
        "SHIOL_EVALUATION_CRON": NEVER,
    }
    env.pop("SHIOL_MUSL_API_KEY", None)
    env.update(extra)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: Sequence[str], env: dict[str, str], cwd: Path, timeout_s: float = 600) -> tuple[float, float, str]:
    """Run to completion; (wall s, CPU s of the tree, stdout). Raises on a non-zero exit."""
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall, _children_cpu() - cpu, done.stdout


def _shiol(home: Path, *args: str) -> tuple[float, float, str]:
    return _run([sys.executable, "-m", "shiol_lib.cli", *args], _env(home), cwd=home)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data_update(repeat: int) -> dict[str, float]:
    """``shiol update-data --offline`` on an empty home: median wall and CPU of ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu, _ = _shiol(Path(tmp), "update-data", "--offline")
        walls.append(wall)
        cpus.append(cpu)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "runs": repeat}


def cli_latencies(repeat: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of each start-up command on a seeded store."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _shiol(home, "update-data", "--offline")
        for name, args in CLI_COMMANDS.items():
            runs = [_shiol(home, *args)[:2] for _ in range(repeat)]
            out[name] = {
                "wall_s": statistics.median(w for w, _ in runs),
                "min_wall_s": min(w for w, _ in runs),
                "cpu_s": statistics.median(c for _, c in runs),
                "runs": repeat,
            }
    return out


def idle_scheduler(seconds: float, cycle_s: str = "1.0") -> dict[str, Any]:
    """CPU % of one core, RSS and USS of the idle scheduler over ``seconds``; module count from the probe."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _shiol(home, "update-data", "--offline")
        env = _env(home, SHIOL_SCHEDULER_CYCLE_S=cycle_s, SHIOL_API_PORT=str(_free_port()))
        proc = subprocess.Popen(
            [sys.executable, "-m", "shiol_lib.scheduling.app"],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(8)  # imports, start-up, first plans
            watched = psutil.Process(proc.pid)
            before = sum(watched.cpu_times()[:2])
            time.sleep(seconds)
            used = sum(watched.cpu_times()[:2]) - before
            memory = watched.memory_full_info()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=90)
        probe_out = home / "probe.json"
        probe_env = _env(home, SHIOL_API_PORT=str(_free_port()), SHIOL_API_TOKEN="bench")
        _run([sys.executable, str(BENCH / "scheduler_probe.py"), str(probe_out), "--idle-s", "2"], probe_env, home)
        probe = json.loads(probe_out.read_text())
    return {
        "cpu_percent": 100.0 * used / seconds,
        "rss_mb": memory.rss / MB,
        "uss_mb": memory.uss / MB,
        "window_s": seconds,
        "cycle_s": float(cycle_s),
        "modules": len(probe["modules"]),
        "probe_rss_mb": probe["rss_mb"],
        "probe_uss_mb": probe["uss_mb"],
    }


_PIPELINE_CHILD = """
import json, sys
from datetime import date
from shiol_lib.jobs.run import run_job
from shiol_lib.settings import load_settings
args = json.loads(sys.argv[1])
days = {k: date.fromisoformat(args[k]) for k in ("history_end", "target_draw_date") if args.get(k)}
outcome = run_job(load_settings(), "pipeline", offline=True, seed=args["seed"], step_parameters=args["parameters"],
                  **days)
print(json.dumps({"status": str(outcome.status), "manifest": str(outcome.directory / "manifest.json")}))
"""


def _tree_memory_mb(root: psutil.Process) -> tuple[float, float, dict[int, float]]:
    """The tree's summed RSS and PSS, and each step kernel's PSS (pid -> MB).

    PSS charges a page shared by n processes 1/n to each: the sum over the tree is the memory it really
    takes, and a kernel forked from the template (execution/template.py) is charged its share of the
    imported stack's pages, not all of them as its RSS is.
    """
    rss = pss = 0
    kernels: dict[int, float] = {}
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # ended between the listing and the read
            info = proc.memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
            if "ipykernel_launcher" in " ".join(proc.cmdline()):
                kernels[proc.pid] = info.pss / MB
    return rss / MB, pss / MB, kernels


def notebook_pipeline(
    seed: int,
    tune_draws: int,
    test_draws: int,
    *,
    previous: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The pipeline job through papermill in a fresh process; per-step figures from its manifest.

    The whole tree's resident memory (job process, papermill, kernel) is summed every 0.5 s: its peak is
    ``tree_peak_rss_mb`` (and ``tree_peak_pss_mb``; ``kernel_peak_pss_mb``: the largest kernel's PSS).
    With ``previous`` (history end, target), the previous drawing's run goes first in
    the same home (the cold run, under ``cold``), then the next run (the scheduled case, warm: step 4 finds
    the previous run's replays in the store); the top-level figures are the last run's.
    """
    parameters = {
        "weight_optimization": {"tune_draws": tune_draws},
        "historical_validation": {"test_draws": test_draws},
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cold = None
        if previous is not None:
            cold = _pipeline_once(
                home,
                {"seed": seed, "parameters": parameters, "history_end": previous[0], "target_draw_date": previous[1]},
            )
        out = _pipeline_once(home, {"seed": seed, "parameters": parameters})
    return {**out, "cold": cold} if cold is not None else out


def _pipeline_once(home: Path, args: dict[str, Any]) -> dict[str, Any]:
    out, err = home / "pipeline.out", home / "pipeline.err"  # files, not pipes: nothing blocks the child
    cpu, started = _children_cpu(), time.perf_counter()
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", _PIPELINE_CHILD, json.dumps(args)],
            env=_env(home),
            cwd=home,
            stdout=stdout_file,
            stderr=stderr_file,
        )
        root, peak, peak_pss, kernel_pss = psutil.Process(proc.pid), 0.0, 0.0, 0.0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                rss, pss, kernels = _tree_memory_mb(root)
                peak, peak_pss = max(peak, rss), max(peak_pss, pss)
                kernel_pss = max(kernel_pss, *kernels.values(), 0.0)
            time.sleep(0.5)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    stdout, stderr = out.read_text(), err.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"the notebook pipeline exited {proc.returncode}: {stderr[-2000:]}")
    told = json.loads(stdout.strip().splitlines()[-1])
    manifest = json.loads(Path(told["manifest"]).read_text())
    steps = {
        s["name"]: {
            "duration_s": s.get("duration_s"),
            "peak_rss_mb": s.get("peak_rss_mb"),
            "cpu_s": s.get("cpu_s"),
            "status": s.get("status"),
        }
        for s in manifest["steps"]
    }
    return {
        "notebook_s": wall,
        "notebook_cpu_s": cpu,
        "timeline": timeline(Path(told["manifest"])),
        "status": told["status"],
        "steps": steps,
        "kernel_peak_rss_mb": max((s["peak_rss_mb"] or 0.0 for s in steps.values()), default=None),
        "tree_peak_rss_mb": peak,
        "tree_peak_pss_mb": peak_pss,
        "kernel_peak_pss_mb": kernel_pss,
    }


def timeline(manifest_path: Path) -> dict[str, Any]:
    """Where a run's time went, from its manifest and the cells' times papermill recorded in each notebook.

    Per step: ``gap_s`` (since the previous step ended, or the run opened: the job's bookkeeping),
    ``to_first_cell_s`` (step start to its first cell: the kernel made ready, papermill's set-up),
    ``cells_s`` (first cell's start to last cell's end: the notebook's own work) and ``after_cells_s``; then
    ``after_last_step_s`` (closing the run: last report, hashes, ledger, dashboard).
    """
    import nbformat

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    manifest = json.loads(manifest_path.read_text())
    previous, steps = at(manifest["started_at"]), {}
    for step in manifest["steps"]:
        if not (step.get("started_at") and step.get("finished_at") and step.get("output")):
            continue
        started, finished = at(step["started_at"]), at(step["finished_at"])
        cells = [
            (at(c.metadata.papermill["start_time"]), at(c.metadata.papermill["end_time"]))
            for c in nbformat.read(manifest_path.parent / step["output"], as_version=4).cells
            if c.metadata.get("papermill", {}).get("start_time") and c.metadata["papermill"].get("end_time")
        ]
        first, last = (cells[0][0], cells[-1][1]) if cells else (started, finished)
        steps[step["name"]] = {
            "gap_s": started - previous,
            "to_first_cell_s": first - started,
            "cells_s": last - first,
            "after_cells_s": finished - last,
        }
        previous = finished
    return {"steps": steps, "after_last_step_s": at(manifest["finished_at"]) - previous}
