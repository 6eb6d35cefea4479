"""Run a Rocketry app and the health API in one asyncio loop, and stop both gracefully on SIGTERM.

Used by ``schedules.py`` (which owns the app: tasks and conditions) so that the app file stays a
schedule and nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from typing import Any

from rocketry import Rocketry

from shiol_lib.domain.slots import ScheduleError
from shiol_lib.scheduling.health import build_health_app
from shiol_lib.scheduling.http_server import bind_socket, make_server
from shiol_lib.scheduling.scheduler import STOP_GRACE_S, Scheduler
from shiol_lib.store import Store, open_store

log = logging.getLogger(__name__)


def run_service(app: Rocketry, scheduler: Scheduler, *, grace_s: float = STOP_GRACE_S) -> None:
    """Start the scheduler (marking dead runs crashed), then serve Rocketry and the health API.

    Serves until SIGTERM or SIGINT: runs in flight get ``grace_s`` to finish, then are recorded
    interrupted.

    Raises:
        ConfigError: the API address cannot be bound (checked before anything starts).
    """
    settings = scheduler.settings
    sock = bind_socket(settings.api_host, settings.api_port)  # a taken port: ConfigError, nothing started
    try:
        crashed = scheduler.start()
    except BaseException:
        sock.close()
        raise
    if crashed:
        log.warning("marked %d run(s) crashed at start-up: %s", len(crashed), ", ".join(crashed))
    app.session.config.cycle_sleep = settings.scheduler_cycle_s
    started = datetime.now(UTC)

    def health_store() -> Store:  # a scrape must not wait 30 s behind a busy kernel: 2 s, then a 503
        return open_store(settings.db_path, settings.snapshot_path, lock_timeout_s=min(settings.lock_timeout_s, 2.0))

    def cached_plan() -> dict[str, Any]:  # memory only: the planning thread reads the store
        plan = scheduler.cached_plan()
        if plan is None:
            raise ScheduleError("no plan made yet: the planner is starting or cannot read the store")
        return plan.as_dict()

    scheduler.start_planning()
    health = build_health_app(
        settings,
        store_factory=health_store,
        plan_provider=cached_plan,
        started_at=started,
        plan_age_s=scheduler.plan_age_s,
    )
    server = make_server(health, settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def shut_down(signum: int) -> None:
            log.info("%s received: stopping (grace %.0f s)", signal.Signals(signum).name, grace_s)
            loop.run_in_executor(None, scheduler.stop, grace_s)
            app.session.shut_down()
            server.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, shut_down, signum)
        log.info("scheduler up; health API on %s:%d", settings.api_host, sock.getsockname()[1])
        await asyncio.gather(app.serve(), server.serve(sockets=[sock]))

    asyncio.run(main())
