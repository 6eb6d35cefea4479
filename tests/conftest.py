"""Shared fixtures: the bundled history, a fresh store in a temp folder, the fake MUSL and NY servers, and
the local alert channels (a webhook receiver and an SMTP server).

The helper modules beside this file (``fakesources``, ``alert_support``, ``analysis_support``, ...) are
importable from every test folder because pytest puts this folder on ``sys.path`` for its ``conftest.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from alert_support import smtp, webhook
from fakesources import musl_server, ny_server
from reliability_support import OUTPUT_KEY, WORKER_TALLIES, add_output, write_when_whole

from shiol_lib.domain.draws import Draw
from shiol_lib.ingest.sources import BundledSource
from shiol_lib.store import Store, open_store

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def bundled_draws() -> list[Draw]:
    """The 1,647 draws of the bundled snapshot."""
    batch = BundledSource().fetch(now=NOW)
    assert batch.ok
    return batch.draws


@pytest.fixture(scope="session")
def bundled_frame(bundled_draws: list[Draw]) -> pd.DataFrame:
    """The bundled history as the canonical DataFrame."""
    from shiol_lib.domain.draws import draws_to_frame

    return draws_to_frame(bundled_draws)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty, migrated store in ``tmp_path``."""
    return open_store(tmp_path / "var" / "shiol.duckdb", tmp_path / "var" / "shiol.snapshot.duckdb", lock_timeout_s=5)


def _live_children() -> list[psutil.Process]:
    live = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                live.append(process)
        except psutil.NoSuchProcess:
            continue
    return live


# Helpers that live as long as the pytest process by design (Dask's LocalCluster starts multiprocessing's
# resource tracker once per process); anything else a test started must be gone when the session ends.
_SESSION_LONG = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return f"pid {process.pid}"


def _is_session_long(process: psutil.Process) -> bool:
    try:
        return any(name in " ".join(process.cmdline()) for name in _SESSION_LONG)
    except psutil.Error:
        return True  # gone meanwhile


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Error at the end of the session when a process the tests started (a child of pytest, at any depth)
    is still alive, naming each; they are then killed, so one leak does not outlive the run."""
    yield
    leftovers = [p for p in _live_children() if not _is_session_long(p)]
    _, alive = psutil.wait_procs(leftovers, timeout=10)  # give processes being torn down their moment
    if alive:
        names = [_describe(p) for p in alive]
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        pytest.fail(
            f"{len(alive)} process(es) started by the tests are still running at the end of the "
            f"session: {'; '.join(names)}",
            pytrace=False,
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: add up the fault tally of a worker that finished (tests/faults/conftest.py)."""
    output = getattr(node, "workeroutput", {}).get(OUTPUT_KEY)
    if output is not None:
        add_output(WORKER_TALLIES, output)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On the xdist controller, which runs no test: write docs/RELIABILITY.md from the workers' tallies
    when together they ran the whole fault suite (without xdist, tests/faults/conftest.py writes it)."""
    if session.config.pluginmanager.hasplugin("dsession"):
        write_when_whole(session.config, exitstatus, WORKER_TALLIES)


@pytest.fixture
def new_children() -> Callable[[], list[psutil.Process]]:
    """A call that lists the live processes this test started and left (children of pytest's process).

    Processes other tests started are not this test's to judge: some live as long as pytest by design
    (multiprocessing's resource tracker, which Dask's LocalCluster starts once per process).
    """
    before = {p.pid for p in _live_children()}
    return lambda: [p for p in _live_children() if p.pid not in before]


__all__ = [
    "bundled_draws",
    "bundled_frame",
    "musl_server",
    "no_process_left_behind",
    "ny_server",
    "smtp",
    "store",
    "webhook",
]
