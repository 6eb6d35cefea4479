"""A real process that holds a job: it opens a run through the lifecycle (row, job lock, manifest) and waits.

Tests use it to stand for a job run in flight (``hold_job``), then kill it (SIGKILL) to stand for one
whose process died: the store keeps the row ``running`` with a fresh heartbeat.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

HOLDER = """
import sys, time
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.lifecycle import RunLifecycle
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store

settings = load_settings()
store = open_store(settings.db_path, settings.snapshot_path)
run = RunLifecycle.open(settings, store, sys.argv[1], (), RunContext(), seed=1, code={}, environment={})
print(run.run_id, flush=True)
time.sleep(600)
"""


@contextmanager
def hold_job(home: Path, job: str, env: Mapping[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """A live process holding ``job`` in the workbench home ``home``: yields it and its run id; killed after."""
    full_env = {**os.environ, "SHIOL_HOME": str(home), **(env or {})}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, job], env=full_env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        run_id = holder.stdout.readline().strip()
        assert run_id, "the holder did not open its run"
        yield holder, run_id
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
