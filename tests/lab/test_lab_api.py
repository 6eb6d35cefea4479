"""The Lab's REST API on a real JupyterLab (``shiol lab``'s command) on 127.0.0.1, over a seeded home.

One server for the module: a store and archive with closed pipeline runs (``archive_support.Home``)
and rows of other jobs (``store_support.add_run``), a Lab folder holding an exploratory notebook and a
notebook without a ``parameters`` cell. Requests carry the token in the ``Authorization`` header
unless a test is about the token or the XSRF check (a browser's cookie session).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from archive_support import Home
from click.testing import CliRunner
from lab_support import serving_lab
from service_support import free_port
from store_support import add_run

from shiol_lib.cli.lab_server import lab_server
from shiol_lib.cli.main import cli
from shiol_lib.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
FREQUENCIES = REPO / "notebooks" / "exploratory" / "1.0-shw-draw-frequencies.ipynb"
TOKEN = "lab-test-token"
HANG_GUARD_S = 120.0


class Lab:
    """The running server: its API base URL, home and Lab folder."""

    def __init__(self, url: str, home: Path, root: Path, pipeline_runs: list[str]) -> None:
        self.url, self.home, self.root, self.pipeline_runs = url, home, root, pipeline_runs

    def api(self, path: str) -> str:
        return f"{self.url}/shiol/api/v1/{path}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.api(path), headers={"Authorization": f"token {TOKEN}"}, timeout=30, **kwargs)

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        return requests.post(self.api(path), headers={"Authorization": f"token {TOKEN}"}, data=data, timeout=30)


def _seed(home: Path) -> list[str]:
    seeded = Home(home)
    ids = [seeded.close_run(minutes=n)[0] for n in range(5)]
    ids.append(seeded.close_run(minutes=10, status="failed")[0])
    add_run(seeded.store, "20261201T000000Z-0000aa", "data_update", "success", hour=200)
    add_run(seeded.store, "20261201T010000Z-0000bb", "data_update", "failed", hour=201)
    return ids


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab with the extension, as ``shiol lab`` starts it; stopped (and waited for) at the end."""
    base = tmp_path_factory.mktemp("lab")
    home, root = base / "home", base / "root"
    pipeline_runs = _seed(home)
    (root / "exploratory").mkdir(parents=True)
    shutil.copy(FREQUENCIES, root / "exploratory" / FREQUENCIES.name)
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(bare, root / "no_parameters.ipynb")
    (base / "outside.ipynb").write_bytes(FREQUENCIES.read_bytes())
    env = {**os.environ, "SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": "http://127.0.0.1:9", "SHIOL_HTTP_RETRIES": "0"}
    settings = load_settings(env)
    server = lab_server(settings, port=free_port(), token=TOKEN)
    jupyter = {f"JUPYTER_{d}_DIR": str(base / "jupyter" / d.lower()) for d in ("CONFIG", "DATA", "RUNTIME")}
    server_env = {**server.env, **jupyter, "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1"}
    with serving_lab(server, root, server_env, base / "lab.log") as url:
        yield Lab(url, home, root, pipeline_runs)


def test_without_a_token_or_with_a_bad_one_every_route_is_refused(lab: Lab) -> None:
    for path in ("runs", "jobs", "plan", f"runs/{lab.pipeline_runs[0]}"):
        assert requests.get(lab.api(path), timeout=30).status_code in (401, 403)
        bad = requests.get(lab.api(path), headers={"Authorization": "token nope"}, timeout=30)
        assert bad.status_code in (401, 403)
    assert requests.post(lab.api("jobs/evaluation/pause"), data=b"{}", timeout=30).status_code in (401, 403)
    assert "evaluation" not in _jobs_file(lab)


def test_a_cookie_session_needs_the_xsrf_token_on_post(lab: Lab) -> None:
    session = requests.Session()
    session.trust_env = False
    assert session.get(f"{lab.url}/lab", params={"token": TOKEN}, timeout=30).status_code == 200
    assert session.get(lab.api("jobs"), timeout=30).status_code == 200  # the login cookie alone reads
    refused = session.post(lab.api("jobs/check"), data=b"{}", timeout=30)
    assert refused.status_code == 403
    xsrf = session.cookies.get("_xsrf")
    assert xsrf
    accepted = session.post(lab.api("jobs/check"), data=b"{}", headers={"X-XSRFToken": xsrf}, timeout=30)
    assert accepted.status_code == 400 and accepted.json()["field"] == "notebook"


def test_runs_page_newest_first_with_paging_and_filters(lab: Lab) -> None:
    everything = lab.get("runs").json()
    assert everything["total"] == 8 and everything["limit"] == 50 and everything["offset"] == 0
    started = [r["started_at"] for r in everything["runs"]]
    assert started == sorted(started, reverse=True)
    first, second = lab.get("runs", params={"limit": 3}).json(), lab.get("runs", params={"limit": 3, "offset": 3})
    assert [r["run_id"] for r in first["runs"] + second.json()["runs"]] == [r["run_id"] for r in everything["runs"][:6]]
    assert first["total"] == 8 and len(first["runs"]) == 3
    pipeline = lab.get("runs", params={"job": "pipeline"}).json()
    assert pipeline["total"] == 6 and {r["job"] for r in pipeline["runs"]} == {"pipeline"}
    failed = lab.get("runs", params={"status": "failed"}).json()
    assert {(r["job"], r["status"]) for r in failed["runs"]} == {("pipeline", "failed"), ("data_update", "failed")}
    both = lab.get("runs", params={"status": "failed", "job": "data_update"}).json()
    assert [r["run_id"] for r in both["runs"]] == ["20261201T010000Z-0000bb"]
    run = next(r for r in everything["runs"] if r["run_id"] == lab.pipeline_runs[0])
    assert run["status"] == "success" and run["step_count"] == 1 and run["steps_done"] == 1
    assert run["has_report"] is True and run["duration_s"] == 60.0 and run["current_step"] is None
    assert run["started_at"].endswith("+00:00") and run["started_at_et"].endswith(("-05:00", "-04:00"))
    assert lab.get("runs", params={"offset": 100}).json()["runs"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"status": "exploded"}, "status"),
    ],
)
def test_a_bad_page_parameter_is_a_400_naming_it(lab: Lab, params: dict[str, str], field: str) -> None:
    answer = lab.get("runs", params=params)
    assert answer.status_code == 400 and answer.json()["field"] == field
    assert repr(next(iter(params.values()))) in answer.json()["error"]


def test_one_run_with_steps_manifest_report_and_files(lab: Lab) -> None:
    run_id = lab.pipeline_runs[0]
    run = lab.get(f"runs/{run_id}").json()
    assert run["run_id"] == run_id and run["manifest"]["run_id"] == run_id
    assert run["steps"][0]["name"] == "performance_analysis" and run["steps"][0]["position"] == 1
    assert run["rerun_command"] == f"shiol rerun {run_id}" and run["parent_run_id"] is None
    report = lab.get(f"runs/{run_id}/report")
    assert report.status_code == 200 and "No evidence of an edge" in report.text
    assert report.headers["Content-Type"].startswith("text/html")
    assert report.headers["Content-Security-Policy"].split(";")[0] == "sandbox"  # no script runs
    notebook = lab.get(f"runs/{run_id}/files/60_analyze_performance.ipynb")
    assert notebook.headers["Content-Type"] == "application/x-ipynb+json" and notebook.json() == {"cells": []}
    assert lab.get(f"runs/{run_id}/files/manifest.json").status_code == 404  # not a file the manifest lists
    diff = lab.get(f"runs/{run_id}/diff/{lab.pipeline_runs[-1]}")
    assert diff.status_code == 200 and isinstance(diff.json()["differences"], list)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("runs/..%2F..%2Fetc", 400),
        ("runs/..%2F..%2Fetc/report", 400),
        ("runs/20261128T151500Z-a1b2c3%2F..", 400),
        ("runs/not-a-run", 400),
        ("runs/20991231T000000Z-ffffff", 404),
        ("runs/20991231T000000Z-ffffff/report", 404),
        ("runs/{run}/files/..%2F..%2Fmanifest.json", 404),
        ("runs/{run}/files/%2Fetc%2Fpasswd", 404),
        ("runs/{run}/diff/..%2Fx", 400),
        ("jobs/no-such-job", 404),
        ("notebooks/parameters?path=..%2Foutside.ipynb", 400),
        ("notebooks/parameters?path=%2Fetc%2Fpasswd", 400),
        ("notebooks/parameters?path=no_parameters.ipynb", 400),
        ("notebooks/parameters?path=missing.ipynb", 404),
        ("notebooks/parameters", 400),
    ],
)
def test_each_bad_path_is_refused_with_its_reason(lab: Lab, path: str, status: int) -> None:
    answer = lab.get(path.format(run=lab.pipeline_runs[0]))
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] and "Traceback" not in body["error"] and "field" in body


def test_a_notebooks_parameters_with_types_defaults_and_help(lab: Lab) -> None:
    answer = lab.get("notebooks/parameters", params={"path": f"exploratory/{FREQUENCIES.name}"}).json()
    era = next(p for p in answer["parameters"] if p["name"] == "era_start")
    assert era == {"name": "era_start", "type": "str", "default": "2015-10-07", "help": era["help"]}
    assert "first drawing counted" in era["help"]


def test_jobs_list_and_one_job(lab: Lab) -> None:
    jobs = {j["name"]: j for j in lab.get("jobs").json()["jobs"]}
    assert {"pipeline", "data_update", "evaluation"} <= set(jobs)
    pipeline = jobs["pipeline"]
    assert pipeline["builtin"] is True and pipeline["schedule"]["text"] and pipeline["next_run"]
    assert pipeline["last_result"]["run_id"] == lab.pipeline_runs[-1] and pipeline["running"] is False
    assert jobs["data_update"]["last_result"]["status"] == "failed"
    assert lab.get("jobs/pipeline").json() == pipeline


ADD = {
    "notebook": f"exploratory/{FREQUENCIES.name}",
    "name": "weekly-freq",
    "description": "draw frequencies every Monday",
    "schedule": {"cron": "0 7 * * 1", "timezone": "America/New_York"},
    "parameters": {"era_start": "2016-01-01"},
    "secrets": ["MY_TOKEN"],
}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ADD, "name": 7}, "name"),
        ({k: v for k, v in ADD.items() if k != "notebook"}, "notebook"),
        ({**ADD, "schedule": {"every": "day"}}, "schedule"),
        ({**ADD, "schedule": 5}, "schedule"),
        ({**ADD, "parameters": ["era_start"]}, "parameters"),
        ({**ADD, "secrets": "MY_TOKEN"}, "secrets"),
        ({**ADD, "notebook": "../outside.ipynb"}, "notebook"),
        ({**ADD, "colour": "red"}, "colour"),
        ([ADD], "body"),
    ],
)
def test_a_malformed_add_is_a_400_naming_the_field_and_writes_nothing(lab: Lab, body: Any, field: str) -> None:
    for path in ("jobs", "jobs/check"):
        answer = lab.post(path, body)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert "weekly-freq" not in _jobs_file(lab)


def test_a_body_that_is_not_json_is_a_400(lab: Lab) -> None:
    for path in ("jobs", "jobs/check", "jobs/evaluation/run", "jobs/evaluation/pause"):
        answer = lab.post(path, raw=b"{not json")
        assert answer.status_code == 400 and answer.json()["field"] == "body"


def test_check_names_each_problem_and_writes_nothing(lab: Lab) -> None:
    assert lab.post("jobs/check", ADD).json() == {"problems": []}
    bad_name = lab.post("jobs/check", {**ADD, "name": "Bad Name"}).json()["problems"]
    assert [p["field"] for p in bad_name] == ["name"] and bad_name[0]["reason"]
    bad_cron = lab.post("jobs/check", {**ADD, "schedule": {"cron": "61 * * * *"}}).json()["problems"]
    assert bad_cron and bad_cron[0]["field"].startswith("schedule")
    undeclared = lab.post("jobs/check", {**ADD, "parameters": {"nope": 1}}).json()["problems"]
    assert undeclared and "nope" in json.dumps(undeclared)
    no_cell = lab.post("jobs/check", {**ADD, "notebook": "no_parameters.ipynb"}).json()["problems"]
    assert no_cell
    assert not (lab.home / "jobs.toml").exists()


def test_add_writes_the_file_exactly_as_the_cli_does(lab: Lab, tmp_path: Path) -> None:
    refused = lab.post("jobs", {**ADD, "name": "Bad Name"})
    assert refused.status_code == 400 and refused.json()["problems"] and not (lab.home / "jobs.toml").exists()
    added = lab.post("jobs", ADD)
    assert added.status_code == 201, added.text
    job = added.json()
    assert job["name"] == "weekly-freq" and job["parameters"] == {"era_start": "2016-01-01"}
    assert job["secrets"] == ["MY_TOKEN"] and job["schedule"]["cron"] == "0 7 * * 1" and job["next_run"]
    assert lab.post("jobs", ADD).status_code == 400  # the name is taken
    copy = tmp_path / "home"
    copy.mkdir()
    notebook = lab.root / "exploratory" / FREQUENCIES.name
    env = {"SHIOL_HOME": str(copy)}
    result = CliRunner().invoke(
        cli,
        ["jobs", "add", str(notebook), "--name", "weekly-freq", "--cron", "0 7 * * 1", "--timezone",
         "America/New_York", "-p", "era_start", "2016-01-01", "--secret", "MY_TOKEN", "--description",
         "draw frequencies every Monday"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _jobs_file(lab) == (copy / "jobs.toml").read_text(encoding="utf-8")
    assert lab.get("jobs/weekly-freq").json()["source"] == str(lab.home / "jobs.toml")


def test_pause_refuses_a_run_now_then_resume(lab: Lab) -> None:
    assert lab.post("jobs/no-such-job/pause").status_code == 404
    assert lab.post("jobs/no-such-job/run").status_code == 404
    paused = lab.post("jobs/evaluation/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["next_run"] is None
    refused = lab.post("jobs/evaluation/run")
    assert refused.status_code == 409 and "paused" in refused.json()["error"]
    resumed = lab.post("jobs/evaluation/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert "evaluation" not in _jobs_file(lab)


def test_run_now_starts_the_job_and_its_run_appears(lab: Lab) -> None:
    started = lab.post("jobs/evaluation/run")
    assert started.status_code == 202 and started.json() == {"started": True, "job": "evaluation"}
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        runs = lab.get("runs", params={"job": "evaluation"}).json()["runs"]
        if runs and runs[0]["status"] != "running":
            break
        assert time.monotonic() < deadline, f"no finished evaluation run: {runs}"
        time.sleep(0.5)
    assert runs[0]["trigger"] == "manual"
    job = lab.get("jobs/evaluation").json()
    assert job["last_result"]["run_id"] == runs[0]["run_id"] and job["running"] is False


def _jobs_file(lab: Lab) -> str:
    path = lab.home / "jobs.toml"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_the_plan_is_what_shiol_schedule_plan_json_prints(lab: Lab) -> None:
    plan = lab.get("plan")
    assert plan.status_code == 200, plan.text
    result = CliRunner().invoke(cli, ["schedule", "plan", "--json"], env={"SHIOL_HOME": str(lab.home)})
    assert result.exit_code == 0, result.output
    assert set(plan.json()) == set(json.loads(result.stdout)) and "next" in plan.json()
