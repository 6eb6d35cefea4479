"""`shiol status` and `shiol schedule plan` name a run whose process died on this host at once (text and JSON)
(issue 21, class 9: they used to say nothing until its heartbeat went stale).

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

import pytest
from run_holder_support import hold_job

from shiol_lib.domain.runs import RunStatus
from shiol_lib.jobs.catalog import DATA_UPDATE, PIPELINE
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


def _named(dead: list[dict]) -> list[tuple]:
    return sorted((d["job"], d["run_id"], d["pid"], d["host"]) for d in dead)


@pytest.mark.faults("slow-answers")
def test_status_and_plan_name_each_run_killed_with_sigkill_at_once_and_no_live_one(tmp_path, fault_cases) -> None:
    fault_cases(3)  # a live run not named; one dead run named; a second dead run named beside the first
    env = {**os.environ, "SHIOL_HOME": str(tmp_path), "SHIOL_HEARTBEAT_STALE_S": "86400"}
    settings = load_settings(env)
    open_store(settings.db_path, settings.snapshot_path)
    host = socket.gethostname()
    with (
        hold_job(tmp_path, DATA_UPDATE.name, env) as (first, first_run),
        hold_job(tmp_path, PIPELINE.name, env) as (second, second_run),
    ):
        status_dead, plan_dead, status_text, plan_text = _dead_in(env)
        assert status_dead == [] and plan_dead == []  # alive: nothing to report
        assert first_run not in status_text + plan_text and second_run not in status_text + plan_text
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)

        status_dead, plan_dead, status_text, plan_text = _dead_in(env)
        assert _named(status_dead) == _named(plan_dead) == [(DATA_UPDATE.name, first_run, first.pid, host)]
        assert second_run not in status_text + plan_text  # still alive
        assert all(d["reason"] == "its process is gone on this host" and d["heartbeat_at_utc"] for d in status_dead)
        assert f"dead run: {DATA_UPDATE.name} run {first_run} (pid {first.pid} on" in status_text
        assert f"DEAD {DATA_UPDATE.name} run {first_run} (pid {first.pid} on" in plan_text
        os.kill(second.pid, signal.SIGKILL)
        second.wait(timeout=30)

    status_dead, plan_dead, status_text, plan_text = _dead_in(env)
    expected = sorted([(DATA_UPDATE.name, first_run, first.pid, host), (PIPELINE.name, second_run, second.pid, host)])
    assert _named(status_dead) == _named(plan_dead) == expected
    for job, run_id, pid, _ in expected:
        assert f"dead run: {job} run {run_id} (pid {pid} on" in status_text
        assert f"DEAD {job} run {run_id} (pid {pid} on" in plan_text
    store = open_store(settings.db_path, settings.snapshot_path)
    assert [r.status for r in run_table.list_runs(store)] == [RunStatus.RUNNING] * 2  # reported, not closed
