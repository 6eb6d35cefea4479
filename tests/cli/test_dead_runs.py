"""`shiol status` and `shiol schedule plan` name a run whose process died on this host at once (text and JSON).

A real process opens a run through the lifecycle and is killed with SIGKILL; its heartbeat stays fresh
(SHIOL_HEARTBEAT_STALE_S is a day), so only the process table can tell. Both commands read only: the
run stays ``running`` in the store until recovery closes it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from run_holder_support import hold_job

from shiol_lib.domain.runs import RunStatus
from shiol_lib.jobs.catalog import DATA_UPDATE
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store
from shiol_lib.store import runs as run_table

SHIOL = str(Path(sys.executable).parent / "shiol")


def _shiol(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHIOL, *args], env=env, capture_output=True, text=True, timeout=300)


def _dead_in(env: dict[str, str]) -> tuple[list[dict], list[dict], str, str]:
    status, plan = _shiol(env, "status", "--json"), _shiol(env, "schedule", "plan", "--json")
    assert status.returncode == 0 and plan.returncode == 0, status.stderr + plan.stderr
    status_text, plan_text = _shiol(env, "status"), _shiol(env, "schedule", "plan")
    return (
        json.loads(status.stdout)["dead_runs"],
        json.loads(plan.stdout)["dead_runs"],
        status_text.stdout,
        plan_text.stdout,
    )


def test_status_and_plan_name_a_run_killed_with_sigkill_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "SHIOL_HOME": str(tmp_path), "SHIOL_HEARTBEAT_STALE_S": "86400"}
    settings = load_settings(env)
    open_store(settings.db_path, settings.snapshot_path)
    with hold_job(tmp_path, DATA_UPDATE.name, env) as (holder, run_id):
        status_dead, plan_dead, status_text, plan_text = _dead_in(env)
        assert status_dead == [] and plan_dead == []  # alive: nothing to report
        assert run_id not in status_text and run_id not in plan_text
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)

    status_dead, plan_dead, status_text, plan_text = _dead_in(env)
    for dead in (status_dead, plan_dead):
        assert [(d["job"], d["run_id"], d["pid"], d["host"]) for d in dead] == [
            (DATA_UPDATE.name, run_id, holder.pid, socket.gethostname())
        ]
        assert dead[0]["reason"] == "its process is gone on this host" and dead[0]["heartbeat_at_utc"]
    assert f"dead run: {DATA_UPDATE.name} run {run_id} (pid {holder.pid} on" in status_text
    assert f"DEAD {DATA_UPDATE.name} run {run_id} (pid {holder.pid} on" in plan_text
    store = open_store(settings.db_path, settings.snapshot_path)
    assert [r.status for r in run_table.list_runs(store)] == [RunStatus.RUNNING]  # reported, not closed
