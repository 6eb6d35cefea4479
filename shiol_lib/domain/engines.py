"""Checking a Dask cluster address before a research run is opened (nothing is recorded for a bad one)."""

from __future__ import annotations

from shiol_lib.errors import ClusterError

ENGINES = ("none", "local")


def resolve_cluster(cluster: str | None, default: str | None) -> str:
    """The engine to use: the option, else the configured default (``SHIOL_DASK_ADDRESS``), else ``none``."""
    value = (cluster or default or "none").strip()
    return value.lower() if value.lower() in ENGINES else value


def check_cluster(cluster: str, *, timeout_s: float = 5.0) -> None:
    """Raise :class:`ClusterError` naming ``cluster`` unless it is ``none``, ``local`` or a live scheduler."""
    if cluster in ENGINES:
        return
    if ":" not in cluster:
        raise ClusterError(f"cluster {cluster!r} is not 'none', 'local' or a scheduler address such as "
                           "tcp://127.0.0.1:8786", address=cluster)
    from distributed import Client

    try:
        client = Client(cluster, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {cluster} within {timeout_s:g} s ({err}); "
                           "start it (dask scheduler) or pass --cluster none", address=cluster) from err
    client.close()
