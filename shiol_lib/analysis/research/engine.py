"""The compute seam of research sweeps: independent, seeded, single-threaded tasks on any engine.

A sweep is a pure function ``fn(key, shared)`` mapped over keys. ``shared`` holds the frames and
settings every task reads (shipped once: scattered to every worker); each task derives its randomness
from its own key (:func:`task_seed`), so the results do not depend on which engine, worker or order ran
it. Engines: ``"none"`` (in this process, no Dask needed), ``"local"`` (a two-worker ``LocalCluster``,
one thread each) or the address of a running Dask scheduler (``tcp://host:8786``). Dask is imported
only when a cluster is used. Workers only compute: they never see the store or the archive.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from shiol_lib.domain.engines import require_engine, resolve_cluster
from shiol_lib.errors import ClusterError

log = logging.getLogger(__name__)

R = TypeVar("R")
IN_PROCESS = "in-process"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CONNECT_TIMEOUT_S = 5.0


@dataclass
class TaskRun(Generic[R]):
    """The results of a sweep in key order, and where its tasks ran."""

    results: list[R]
    engine: str
    tasks_by_worker: dict[str, int] = field(default_factory=dict)
    dashboard: str | None = None
    seconds: float = 0.0


def task_seed(*key: int) -> int:
    """A 32-bit seed derived from a task's integer key (``numpy`` ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


def engine_name(cluster: str | None) -> str:
    """The engine a ``cluster`` value names: ``none``, ``local`` or a scheduler address.

    Raises:
        ClusterError: when the value is none of those.
    """
    return require_engine(resolve_cluster(cluster, None))


def _call(fn: Callable[[Any, Mapping[str, Any]], R], key: Any, shared: Mapping[str, Any]) -> tuple[str, R]:
    """Run one task with BLAS pinned to one thread; return where it ran and its result."""
    where = IN_PROCESS
    if "distributed" in sys.modules:
        from distributed import get_worker

        with suppress(ValueError):  # not inside a worker
            where = get_worker().address
    with threadpool_limits(limits=1):
        return where, fn(key, shared)


@contextmanager
def cluster_client(cluster: str, *, workers: int = 2) -> Iterator[Any]:
    """A Dask client of a fresh ``LocalCluster`` (``"local"``) or of the scheduler at an address.

    Raises :class:`ClusterError` naming the address when it cannot be reached.
    """
    from distributed import Client, LocalCluster

    # distributed logs every scheduler and nanny event at INFO to stderr, which a kernel turns into
    # pages of report output; the dashboard link and progress come from this module's own logger.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    if cluster == "local":
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                env=dict(ONE_THREAD),
                silence_logs=logging.WARNING,
            ) as local,
            Client(local) as client,
        ):
            yield client
            _retire_workers(client)
        return
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {cluster}: {err}", address=cluster) from err
    try:
        yield client
    finally:
        client.close()


def _retire_workers(client: Any, *, deadline_s: float = 30.0) -> None:
    """Close a LocalCluster's workers while its scheduler still runs.

    Closing the cluster at once stops the scheduler under workers that are still sending heartbeats:
    on a busy machine each then logs a traceback and its nanny waits, then kills it, all of it in the
    report. Retired first, they leave quietly; past ``deadline_s`` the cluster's close does the rest.
    """
    stop = time.monotonic() + deadline_s
    while client.run_on_scheduler(_task_count) and time.monotonic() < stop:  # released data first: else the
        time.sleep(0.05)  # scheduler logs an error for the scattered data the retiring workers take along
    client.cluster.scale(0)
    while client.scheduler_info().get("workers") and time.monotonic() < stop:
        time.sleep(0.1)


def _task_count(dask_scheduler: Any) -> int:
    """Tasks (and data) the scheduler still holds (run on the scheduler)."""
    return len(dask_scheduler.tasks)


def run_tasks(
    fn: Callable[[Any, Mapping[str, Any]], R],
    keys: Sequence[Hashable],
    shared: Mapping[str, Any],
    *,
    cluster: str | None = "none",
    progress: Callable[[int, int], None] | None = None,
) -> TaskRun[R]:
    """Map ``fn(key, shared)`` over ``keys`` on the engine ``cluster`` names; results in key order.

    ``fn`` must be a module-level function (workers import it) and deterministic in its arguments.
    ``progress(done, total)`` is called in this process after each finished task. A task lost with its
    worker is recomputed elsewhere by Dask; the result is the same.
    """
    engine = engine_name(cluster)
    started = time.perf_counter()
    if engine == "none":
        out = _run_in_process(fn, keys, shared, progress)
    else:
        out = _run_on_dask(fn, keys, shared, engine, progress)
    out.seconds = time.perf_counter() - started
    log.info("%d task(s) on %s in %.1f s: %s", len(keys), engine, out.seconds, out.tasks_by_worker)
    return out


def _run_in_process(
    fn: Callable[[Any, Mapping[str, Any]], R],
    keys: Sequence[Hashable],
    shared: Mapping[str, Any],
    progress: Callable[[int, int], None] | None,
) -> TaskRun[R]:
    results = []
    for done, key in enumerate(keys, start=1):
        results.append(_call(fn, key, shared)[1])
        if progress:
            progress(done, len(keys))
    return TaskRun(results, "none", {IN_PROCESS: len(keys)} if keys else {})


def _run_on_dask(
    fn: Callable[[Any, Mapping[str, Any]], R],
    keys: Sequence[Hashable],
    shared: Mapping[str, Any],
    engine: str,
    progress: Callable[[int, int], None] | None,
) -> TaskRun[R]:
    from distributed import as_completed

    with cluster_client(engine) as client:
        dashboard = client.dashboard_link
        log.info("Dask cluster %s: dashboard %s", engine, dashboard)
        # Each shared value ships once to every worker (wrapped: scatter would split a list or a dict).
        remote = {name: client.scatter([value], broadcast=True, hash=False)[0] for name, value in shared.items()}
        futures = [
            client.submit(_call, fn, key, remote, key=f"research-task-{i}", pure=False) for i, key in enumerate(keys)
        ]
        position = {f.key: i for i, f in enumerate(futures)}
        finished: dict[int, tuple[str, R]] = {}
        step = max(1, len(futures) // 10)
        for done, future in enumerate(as_completed(futures), start=1):
            finished[position[future.key]] = future.result()
            if progress:
                progress(done, len(futures))
            if done % step == 0 or done == len(futures):
                log.info("research tasks: %d/%d done (dashboard %s)", done, len(futures), dashboard)
        client.cancel([*futures, *remote.values()])  # nothing left on the workers when they retire
    slots = [finished[i] for i in range(len(futures))]  # as_completed yields every future once
    by_worker: dict[str, int] = {}
    for where, _ in slots:
        by_worker[where] = by_worker.get(where, 0) + 1
    return TaskRun([r for _, r in slots], engine, dict(sorted(by_worker.items())), dashboard)
