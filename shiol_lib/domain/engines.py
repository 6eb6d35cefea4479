"""The research engines: their names and which one a ``--cluster`` value (or ``SHIOL_DASK_ADDRESS``) picks.

Pure rules only: connecting to a scheduler is the caller's business (``shiol research`` checks the address
before a run opens; :mod:`shiol_lib.analysis.research.engine` connects when a sweep runs).
"""

from __future__ import annotations

from shiol_lib.errors import ClusterError

ENGINES = ("none", "local")


def resolve_cluster(cluster: str | None, default: str | None) -> str:
    """The engine to use: the option, else the configured default (``SHIOL_DASK_ADDRESS``), else ``none``."""
    value = (cluster or default or "none").strip()
    return value.lower() if value.lower() in ENGINES else value


def require_engine(engine: str) -> str:
    """Return a resolved ``engine`` if it is ``none``, ``local`` or shaped like a scheduler address.

    Raises:
        ClusterError: naming the value when it is none of those.
    """
    if engine not in ENGINES and ":" not in engine:
        raise ClusterError(
            f"cluster {engine!r} is not 'none', 'local' or a scheduler address such as tcp://127.0.0.1:8786",
            address=engine,
        )
    return engine
