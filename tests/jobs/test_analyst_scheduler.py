"""An analyst's job on a real scheduler process (issue 19): added by the CLI while the scheduler runs, planned,
run at its slot, archived and verified; a broken edit of the jobs file opens an incident while the last
good definition keeps running; the fix clears it; a rerun replays the slot and matches.

One scheduler process serves the whole module (about two one-minute slots): the fixture drives it and
records what it saw, each test asserts one promise on that record.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from alert_support import WebhookReceiver
from service_support import free_port, healthz_is, running_scheduler, scheduler_env, stop_scheduler, wait_until

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "writes_slot.ipynb"
JOB = "slot-writer"
TOKEN = "analyst-test-token"
SLOT_S = 60  # the job's cron fires every minute


def shiol(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``shiol`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def manifests(home: Path, status: str = "success") -> list[dict[str, Any]]:
    """The job's archived manifests with ``status``, oldest slot first."""
    found = []
    for path in (home / "runs" / JOB).glob("*/*/manifest.json"):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):  # being written: its rename has not happened yet
            continue
        if manifest["status"] == status and manifest["trigger"] != "rerun":
            found.append(manifest)
    return sorted(found, key=lambda m: m["slot"] or "")


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` as an editor that saves by rename does (the scheduler never reads half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Drive one scheduler process through the scenario; yield what it did."""
    home = tmp_path_factory.mktemp("analyst-home")
    log = home / "scheduler.log"
    webhook = WebhookReceiver()
    port = free_port()
    env = scheduler_env(
        home,
        SHIOL_SCHEDULER_CYCLE_S="0.5",
        SHIOL_API_PORT=str(port),
        SHIOL_API_TOKEN=TOKEN,
        SHIOL_ALERT_WEBHOOK_URL=webhook.url,
        SHIOL_HEARTBEAT_S="1",
    )
    seeded = shiol(env, "update-data", "--offline")
    assert seeded.returncode == 0, seeded.stderr
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {"home": home, "env": env}

    def health() -> dict[str, Any]:
        answer = requests.get(
            f"{url}/api/v1/scheduler/health", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    try:
        with running_scheduler(env, log) as proc:
            wait_until(healthz_is(url, 200), 120, "the health API", proc, log)
            seen["added"] = shiol(env, "jobs", "add", str(NOTEBOOK), "--name", JOB, "--cron", "* * * * *")
            assert seen["added"].returncode == 0, seen["added"].stderr
            seen["planned"] = wait_until(
                lambda: h if (h := health())["jobs"].get(JOB) else None, 30, "the job in the health report", proc, log
            )
            seen["plan"] = json.loads(shiol(env, "schedule", "plan", "--json").stdout)
            seen["first"] = wait_until(lambda: manifests(home)[:1] or None, 2 * SLOT_S + 60, "its run", proc, log)[0]
            seen["metrics"] = requests.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
            ).text

            good = (home / "jobs.toml").read_text(encoding="utf-8")
            broken = good.replace(f'name = "{JOB}"', f'name = "{JOB}"\ncolour = "red"')
            assert broken != good
            write_atomically(home / "jobs.toml", broken)
            seen["broken_health"] = wait_until(
                lambda: h if (h := health())["definitions"] else None, 30, "the problem in the health report", proc, log
            )
            seen["opened"] = wait_until(
                lambda: [b for b in webhook.bodies if b["kind"] == "definitions"] or None, 30, "the alert", proc, log
            )
            slot = seen["first"]["slot"]
            seen["second"] = wait_until(
                lambda: next((m for m in manifests(home) if m["slot"] > slot), None),
                2 * SLOT_S + 60,
                "a run at a later slot during the broken edit",
                proc,
                log,
            )
            seen["still_broken"] = health()["definitions"]

            write_atomically(home / "jobs.toml", good)
            seen["cleared"] = wait_until(
                lambda: [b for b in webhook.bodies if b["kind"] == "recovered"] or None, 30, "the clearing", proc, log
            )
            seen["fixed_health"] = health()
            stop_scheduler(proc, log)
    finally:
        webhook.close()
    seen["verify"] = shiol(env, "runs", "verify")
    yield seen


def test_a_job_added_while_the_scheduler_runs_is_planned_with_its_next_run(observed):
    assert observed["added"].stdout.startswith(f"added job {JOB} to ")
    report = observed["planned"]["jobs"][JOB]
    assert report["next_run"] and report["next_run_utc"]
    assert datetime.fromisoformat(report["next_run"]).utcoffset() is not None
    assert observed["plan"]["next"][JOB] and observed["plan"]["next_utc"][JOB]


def test_it_runs_at_its_slot_archived_with_the_slot_handed_and_verified(observed):
    first = observed["first"]
    assert first["trigger"] in ("on-time", "catch-up"), first["trigger"]
    slot = datetime.fromisoformat(first["slot"])
    assert slot.utcoffset() is not None and slot.second == 0  # a minute of the cron, with its offset
    step = first["steps"][0]
    assert step["parameters"]["scheduled_at"] == first["slot"]
    assert step["parameters"]["run_id"] == first["run_id"]
    folder = next((observed["home"] / "runs" / JOB).glob(f"*/{first['run_id']}"))
    executed = (folder / "writes_slot.ipynb").read_text(encoding="utf-8")
    assert f"run_id={first['run_id']} scheduled_at={first['slot']}" in executed
    assert observed["verify"].returncode == 0, observed["verify"].stdout + observed["verify"].stderr
    assert re.search(rf'^shiol_job_runs(_total)?{{job="{JOB}",status="success"}} 1\.0$', observed["metrics"], re.M)


def test_a_broken_edit_opens_an_incident_and_the_last_good_job_keeps_running(observed):
    problems = observed["broken_health"]["definitions"]
    assert problems == observed["still_broken"]
    assert len(problems) == 1
    problem = problems[0]
    assert problem["file"].endswith("jobs.toml") and problem["job"] == JOB and problem["field"] == "colour"
    assert problem["reason"]
    alert = observed["opened"][0]
    assert alert["job"] == JOB and "colour" in alert["message"] and "last good definitions" in alert["message"]
    second = observed["second"]
    assert second["trigger"] in ("on-time", "catch-up") and second["slot"] > observed["first"]["slot"]


def test_fixing_the_file_clears_the_incident(observed):
    assert len(observed["opened"]) == 1  # one alert for the incident, however many plans saw it
    cleared = observed["cleared"][0]
    assert cleared["job"] == JOB and "validates again" in cleared["message"]
    health = observed["fixed_health"]
    assert health["definitions"] == [] and health["alerts"] == []


def test_a_rerun_replays_the_slot_and_reports_identical_outputs(observed):
    original = observed["first"]
    done = shiol(observed["env"], "rerun", original["run_id"], "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["identical"] is True and list(result["outputs"]) == ["notebook:writes_slot"]
    folder = next((observed["home"] / "runs" / JOB).glob(f"*/{result['run_id']}"))
    rerun = json.loads((folder / "manifest.json").read_text())
    assert rerun["trigger"] == "rerun" and rerun["steps"][0]["parameters"]["scheduled_at"] == original["slot"]
    executed = (folder / "writes_slot.ipynb").read_text(encoding="utf-8")
    assert f"run_id={result['run_id']} scheduled_at={original['slot']}" in executed
