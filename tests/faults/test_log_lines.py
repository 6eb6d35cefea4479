"""One log line per event (issue 21, class 5): every line of `shiol schedule run` used to reach stderr twice,
and with ``SHIOL_LOG_FORMAT=json`` each event was one text line and one JSON line.

A real scheduler runs in each format with a log file beside stderr, runs a data update that fails (no
source answers) and alerts on it, and is stopped with SIGTERM. Each event of start-up, the API, the job
(its start, its end, its failure alert and its ledger witness) and the stop must be on each sink exactly once,
and in JSON mode every line must be JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from service_support import free_port, healthz_is, scheduler_env, stop_scheduler, wait_until

from shiol_lib.domain.draw_calendar import NEW_YORK

pytestmark = pytest.mark.faults("log-lines")

# Each event kind, as a test on a message: each must match exactly one line on each sink.
EVENTS = {
    "start-up": lambda m: m == "Startup complete.",
    "the API up": lambda m: "scheduler up; health API on" in m,
    "the run starting": lambda m: m.startswith("job data_update slot") and m.endswith("starting (catch-up)"),
    "the run finished": lambda m: m.startswith("job data_update run") and "finished failed [fetch]" in m,
    "its failure alert": lambda m: m.startswith("ALERT failures [data_update]"),
    "the ledger witness": lambda m: m.startswith("ALERT witness [data_update]: ledger witness"),
    "SIGTERM": lambda m: m.startswith("SIGTERM received: stopping"),
}


def _messages(lines: list[str], log_format: str) -> list[str]:
    """The message of each line (a text line in JSON mode fails here: it is not JSON)."""
    if log_format == "json":
        return [json.loads(line)["message"] for line in lines]
    return [line.split(": ", 1)[1] for line in lines]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_real_scheduler_writes_each_event_once_to_stderr_and_the_file(tmp_path, log_format, fault_cases):
    fault_cases(2 * len(EVENTS))  # each event kind on each of the two sinks
    port, log, log_file = free_port(), tmp_path / "stderr.log", tmp_path / "logs" / "scheduler.log"
    log_file.parent.mkdir()
    just_now = datetime.now(NEW_YORK) - timedelta(minutes=1)  # one data_update slot, a minute ago
    env = scheduler_env(
        tmp_path / "home",
        SHIOL_API_PORT=str(port),
        SHIOL_LOG_FORMAT=log_format,
        SHIOL_LOG_FILE=str(log_file),
        SHIOL_UPDATE_CRON=f"{just_now:%M %H} * * *",
        SHIOL_GRACE_S="3600",
        SHIOL_ALERT_AFTER_FAILURES="1",
        SHIOL_RETRY_BACKOFF_S="3600",
        SHIOL_SCHEDULER_CYCLE_S="0.2",
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shiol_lib.cli", "schedule", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(healthz_is(f"http://127.0.0.1:{port}", 200), 120, "the health API", proc, log)

        def witnessed() -> bool | None:
            messages = _messages(log_file.read_text().splitlines(), log_format)
            return True if any(map(EVENTS["the ledger witness"], messages)) else None

        wait_until(witnessed, 240, "the failed data update's close", proc, log)
        stop_scheduler(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    for lines in (log.read_text().splitlines(), log_file.read_text().splitlines()):
        messages = _messages(lines, log_format)
        assert len(messages) == len(set(messages)), lines  # no line twice
        for event, matches in EVENTS.items():
            assert sum(map(matches, messages)) == 1, (event, lines)
