"""Job liveness on this host: the process table decides, not the heartbeat's age."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from shiol_lib.jobs.liveness import job_is_alive
from shiol_lib.store.jobs import LockHolder


def _holder(pid: int, beat: datetime, host: str | None = None) -> LockHolder:
    return LockHolder("pipeline", "20240701T000000Z-abcdef", pid, host or socket.gethostname(), beat)


def test_a_live_pid_wins_over_a_stale_heartbeat_and_a_dead_one_loses_a_fresh_one() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        beat = datetime.now(UTC)
        much_later = beat + timedelta(hours=3)
        assert job_is_alive(_holder(proc.pid, beat), stale_s=120, now=much_later)
    finally:
        proc.kill()
        proc.wait()
    assert not job_is_alive(_holder(proc.pid, beat), stale_s=120, now=beat)


def test_a_reused_pid_does_not_keep_a_dead_run_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        before_it_started = datetime.now(UTC) - timedelta(minutes=10)
        assert not job_is_alive(_holder(proc.pid, before_it_started), stale_s=120, now=before_it_started)
    finally:
        proc.kill()
        proc.wait()


def test_on_another_host_only_the_heartbeat_can_tell() -> None:
    beat = datetime.now(UTC)
    elsewhere = _holder(1, beat, host="some-other-host.invalid")
    assert job_is_alive(elsewhere, stale_s=120, now=beat + timedelta(seconds=119))
    assert not job_is_alive(elsewhere, stale_s=120, now=beat + timedelta(seconds=121))
