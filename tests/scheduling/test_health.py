"""The health app served by a real uvicorn server on 127.0.0.1, queried with requests."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from health_support import TOKEN, UPTIME_S, auth, make_settings, planner_of, serving
from prometheus_client.parser import text_string_to_metric_families
from store_support import T0, add_dead_letter, add_missed, add_runs, locked_by_another_process

from shiol_lib.scheduling.health import build_health_app
from shiol_lib.scheduling.http_server import make_server
from shiol_lib.settings import Settings
from shiol_lib.store import Store, open_store
from shiol_lib.store.monitoring import record_alert


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    """pipeline: success, failed, timeout, failed (3 in a row); evaluation: success; problems recorded."""
    folder = tmp_path_factory.mktemp("health")
    store = open_store(folder / "db.duckdb", lock_timeout_s=5)
    add_runs(store, "pipeline", ["success", "failed", "timeout", "failed"])
    add_runs(store, "evaluation", ["success"], start_hour=1.5)
    add_dead_letter(store, "dl-open", "pipeline")
    add_dead_letter(store, "dl-resolved", "pipeline", resolved=True)
    add_missed(store, "pipeline", T0 - timedelta(days=5), "draw", date(2024, 6, 26))
    add_missed(store, "pipeline", T0 - timedelta(days=2), "draw", date(2024, 6, 29))
    add_missed(store, "evaluation", T0 - timedelta(days=1), "slot")
    record_alert(store, "failures", "pipeline", "pipeline failed 3 times", ["log", "webhook"], at=T0)
    return folder, store


@pytest.fixture(scope="module")
def base_url(populated: tuple[Path, Store]) -> Iterator[str]:
    folder, store = populated
    with serving(make_settings(folder), lambda: store, planner_of(store)) as url:
        yield url


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "status"), [(0.5, 200), (None, 503), (121.0, 503)], ids=["fresh", "no-plan-yet", "too-old"]
)
def test_healthz_is_503_when_the_planner_has_no_fresh_plan(tmp_path, store, age, status):
    with serving(make_settings(tmp_path), lambda: store, planner_of(store), plan_age_s=lambda: age) as url:
        response = requests.get(f"{url}/healthz", timeout=5)
        assert response.status_code == status
        assert response.json() == {"status": "ok" if status == 200 else "stale"}


def test_a_store_read_past_its_deadline_is_a_503(tmp_path, store):
    def slow_plan() -> dict[str, Any]:
        time.sleep(2)
        return {}

    with serving(make_settings(tmp_path), lambda: store, slow_plan, read_timeout_s=0.3) as url:
        response = requests.get(f"{url}/api/v1/scheduler/health", headers=auth(), timeout=5)
        assert response.status_code == 503 and "did not answer within 0.3 s" in response.json()["error"]
        assert requests.get(f"{url}/healthz", timeout=1).status_code == 200


def test_healthz_is_open_and_says_nothing_more(base_url):
    for headers in ({}, auth("wrong")):
        response = requests.get(f"{base_url}/healthz", headers=headers, timeout=5)
        assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/scheduler/health"])
@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), auth(TOKEN + "x"), auth(""), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "longer", "empty", "no-scheme", "basic"],
)
def test_protected_endpoints_refuse_a_missing_or_wrong_token(base_url, path, headers):
    response = requests.get(f"{base_url}{path}", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "SHIOL_API_TOKEN" in response.json()["error"]


def test_without_a_configured_token_the_protected_endpoints_answer_503(tmp_path, store):
    settings = make_settings(tmp_path, api_token=None)
    with serving(settings, lambda: store, planner_of(store)) as url:
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        for path in ("/metrics", "/api/v1/scheduler/health"):
            response = requests.get(f"{url}{path}", headers=auth(), timeout=5)
            assert response.status_code == 503
            assert "set SHIOL_API_TOKEN" in response.json()["error"]


# --- content -------------------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_are_computed_from_the_store_at_scrape_time(base_url):
    response = requests.get(f"{base_url}/metrics", headers=auth(), timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("shiol_job_runs_total", job="pipeline", status="failed") == 2
    assert value("shiol_job_runs_total", job="pipeline", status="timeout") == 1
    assert value("shiol_job_runs_total", job="pipeline", status="success") == 1
    assert value("shiol_job_runs_total", job="data_update", status="success") == 0  # planned, never ran
    assert value("shiol_job_consecutive_failures", job="pipeline") == 3
    assert value("shiol_job_consecutive_failures", job="evaluation") == 0
    assert value("shiol_job_last_success_timestamp_seconds", job="pipeline") == (T0 + timedelta(minutes=3)).timestamp()
    assert value("shiol_job_last_run_duration_seconds", job="pipeline") == 180.0
    assert ("shiol_job_last_success_timestamp_seconds", (("job", "data_update"),)) not in samples
    assert value("shiol_job_running", job="pipeline") == 0
    assert value("shiol_dead_letters_open") == 1
    assert value("shiol_missed_draws_total") == 2
    assert value("shiol_missed_slots_total") == 1
    assert UPTIME_S <= value("shiol_scheduler_uptime_seconds") < UPTIME_S + 60


def test_the_health_report_lists_jobs_plan_and_problems(base_url, populated):
    _, store = populated
    response = requests.get(f"{base_url}/api/v1/scheduler/health", headers=auth(), timeout=5)
    assert response.status_code == 200
    report = response.json()
    plan = planner_of(store)()

    assert set(report["jobs"]) == set(plan["next"]) == {"pipeline", "data_update", "evaluation"}
    pipeline = report["jobs"]["pipeline"]
    assert pipeline["next_run"] == plan["next"]["pipeline"]
    assert pipeline["consecutive_failures"] == 3 and pipeline["running"] == 0
    assert (
        pipeline["last_run"]
        == pipeline["last_finished"]
        == {
            "run_id": "pipeline-3",
            "status": "failed",
            "started_at": "2024-07-01T15:00:00-04:00",
            "started_at_utc": "2024-07-01T19:00:00+00:00",
            "finished_at": "2024-07-01T15:03:00-04:00",
            "finished_at_utc": "2024-07-01T19:03:00+00:00",
            "duration_s": 180.0,
            "error": "failed in step fetch",
        }
    )
    assert pipeline["last_success_at"] == "2024-07-01T12:03:00-04:00"  # New York time, like the plan
    assert pipeline["last_success_at_utc"] == "2024-07-01T16:03:00+00:00"  # and its UTC twin
    assert pipeline["next_run_utc"] == plan["next_utc"]["pipeline"]
    assert pipeline["runs_by_status"] == {"failed": 2, "success": 1, "timeout": 1}
    assert report["jobs"]["data_update"]["last_run"] is None
    assert report["jobs"]["evaluation"]["last_finished"]["status"] == "success"

    assert (report["at"], report["due"], report["missed"], report["alerts"]) == (
        plan["at"],
        plan["due"],
        plan["missed"],
        plan["alerts"],
    )
    assert any(a.startswith("pipeline: the last 3 runs failed") for a in report["alerts"])
    assert report["status"] == "attention"
    assert [d["dead_letter_id"] for d in report["dead_letters"]] == ["dl-open"]
    assert report["dead_letters"][0]["rerun_command"] == "shiol rerun pipeline-last"
    assert report["missed_draws"]["total"] == 2
    assert [m["draw_date"] for m in report["missed_draws"]["recent"]] == ["2024-06-29", "2024-06-26"]
    assert report["missed_slots_total"] == 1
    assert [a["channels"] for a in report["recent_alerts"]] == [["log", "webhook"]]
    assert UPTIME_S <= report["uptime_s"] < UPTIME_S + 60
    assert report["sources"] == {"last_answered_at_utc": None, "seconds_since_last_answer": None, "sources": {}}


def test_the_health_report_says_how_long_since_a_source_last_answered(tmp_path, store):
    from shiol_lib.store.sources import record_source_asks

    answered, asked = datetime(2026, 12, 1, 10, 0, tzinfo=UTC), datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    record_source_asks(store, {"ny": (True, "ok: 5 draws"), "musl": (False, "failed: HTTP 500")}, at=answered)
    record_source_asks(store, {"ny": (False, "failed: HTTP 503; falling back")}, at=asked)
    with serving(make_settings(tmp_path), lambda: store, planner_of(store)) as url:
        sources = requests.get(f"{url}/api/v1/scheduler/health", headers=auth(), timeout=5).json()["sources"]
    assert sources["last_answered_at_utc"] == answered.isoformat()
    assert sources["seconds_since_last_answer"] >= (datetime.now(UTC) - answered).total_seconds() - 60
    assert sources["sources"]["ny"] == {
        "last_asked_at_utc": asked.isoformat(),
        "last_answered_at_utc": answered.isoformat(),
        "last_outcome": "failed: HTTP 503; falling back",
    }
    assert sources["sources"]["musl"]["last_answered_at_utc"] is None


# --- failures inside a handler -------------------------------------------------------------------


def test_a_locked_store_is_a_503_naming_the_holder_and_the_server_keeps_serving(tmp_path):
    store = open_store(tmp_path / "db.duckdb", lock_timeout_s=0.2)
    with serving(make_settings(tmp_path), lambda: store, lambda: {"next": {"pipeline": "x"}}) as url:
        with locked_by_another_process(store.path) as holder_pid:
            for path in ("/metrics", "/api/v1/scheduler/health"):
                response = requests.get(f"{url}{path}", headers=auth(), timeout=5)
                assert response.status_code == 503
                error = response.json()["error"]
                assert "StoreLockError" in error and "locked" in error and f"PID {holder_pid}" in error
            assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{url}/metrics", headers=auth(), timeout=5).status_code == 200  # lock released


def test_a_failing_plan_provider_is_a_503(tmp_path, store):
    def broken_plan() -> dict[str, Any]:
        raise RuntimeError("planner exploded")

    with serving(make_settings(tmp_path), lambda: store, broken_plan) as url:
        response = requests.get(f"{url}/api/v1/scheduler/health", headers=auth(), timeout=5)
        assert response.status_code == 503
        assert response.json() == {"error": "health report unavailable: RuntimeError: planner exploded"}
        assert requests.get(f"{url}/metrics", headers=auth(), timeout=5).status_code == 503


# --- the server ----------------------------------------------------------------------------------


def test_make_server_binds_127_0_0_1_by_default_with_lifespan_off():
    settings = Settings(home=Path("."), db_path=Path("db"), snapshot_path=Path("snap"), runs_dir=Path("runs"))
    app = build_health_app(settings, store_factory=lambda: None, plan_provider=dict, started_at=datetime.now(UTC))
    server = make_server(app, settings)
    assert (server.config.host, server.config.port) == ("127.0.0.1", 8765)
    assert server.config.lifespan == "off" and server.config.log_level == "warning"
    with pytest.raises(ValueError, match="timezone"):
        build_health_app(settings, store_factory=lambda: None, plan_provider=dict, started_at=datetime(2024, 7, 1))


def test_the_server_shares_the_loop_and_leaves_sigterm_to_its_host(tmp_path, store):
    """Served in the main thread's asyncio loop: SIGTERM keeps the host's handler throughout."""
    settings = make_settings(tmp_path)

    def host_handler(signum: int, frame: object) -> None:
        pass

    async def serve_and_probe(server: uvicorn.Server) -> tuple[object, int]:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        during = signal.getsignal(signal.SIGTERM)
        port = server.servers[0].sockets[0].getsockname()[1]
        status = await asyncio.get_running_loop().run_in_executor(
            None, lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
        )
        server.should_exit = True
        await task
        return during, status

    app = build_health_app(
        settings, store_factory=lambda: store, plan_provider=planner_of(store), started_at=datetime.now(UTC)
    )
    previous = signal.signal(signal.SIGTERM, host_handler)
    try:
        during, status = asyncio.run(serve_and_probe(make_server(app, settings)))
        assert during is host_handler and status == 200
        assert signal.getsignal(signal.SIGTERM) is host_handler
        # the stock server would have taken it over, which is what make_server avoids
        stock = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None))
        during, _ = asyncio.run(serve_and_probe(stock))
        assert during == stock.handle_exit
    finally:
        signal.signal(signal.SIGTERM, previous)
