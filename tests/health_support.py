"""The health app served by a real uvicorn server on 127.0.0.1 in a background thread, for the tests that
query it (tests/scheduling and the fault suite's liveness bursts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store_support import T0

from shiol_lib.scheduling.health import build_health_app
from shiol_lib.scheduling.http_server import make_server
from shiol_lib.scheduling.planner import History, plan_runs
from shiol_lib.settings import Settings
from shiol_lib.store import Store
from shiol_lib.store.runs import list_runs

TOKEN = "t0ken-for-tests"
AT = T0 + timedelta(hours=6)  # the planner's clock
UPTIME_S = 120.0


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings with the token, an ephemeral port on 127.0.0.1."""
    return Settings(
        home=tmp_path,
        db_path=tmp_path / "db.duckdb",
        snapshot_path=tmp_path / "db.snapshot.duckdb",
        runs_dir=tmp_path / "runs",
        api_token=TOKEN,
        api_port=0,
    ).with_overrides(**overrides)


def planner_of(store: Store) -> Callable[[], dict[str, Any]]:
    """The real planner over the store's runs, at AT."""
    return lambda: plan_runs(History(runs=list_runs(store)), AT).as_dict()


@contextmanager
def serving(
    settings: Settings,
    store_factory: Callable[[], Store],
    plan_provider: Callable[[], Mapping[str, Any]],
    **options: Any,
) -> Iterator[str]:
    """Build the app, serve it with make_server in a background thread, yield its base URL."""
    app = build_health_app(
        settings,
        store_factory=store_factory,
        plan_provider=plan_provider,
        started_at=datetime.now(UTC) - timedelta(seconds=UPTIME_S),
        **options,
    )
    server = make_server(app, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the health server did not start"
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
