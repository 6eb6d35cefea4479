"""Logging set-up: one line per event, text or JSON, a rotating file beside stderr, Rocketry kept quiet (a
real scheduler writing each event once in each format is in tests/faults/test_log_lines.py)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest

from shiol_lib.jobs.job_process import RunResult
from shiol_lib.logs import configure_logging, first_line
from shiol_lib.scheduling.scheduler import _log_finished
from shiol_lib.settings import load_settings


@pytest.fixture
def restore_logging():
    root, task = logging.getLogger(), logging.getLogger("rocketry.task")
    saved = (list(root.handlers), root.level, list(task.handlers), task.propagate)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    task.handlers[:] = saved[2]
    task.propagate = saved[3]


def _event(stream: io.StringIO, status: str, error: str | None = None, error_class: str | None = None) -> str:
    event = {
        "job": "pipeline",
        "slot": datetime(2024, 7, 2, 3, 29, tzinfo=UTC).isoformat(),
        "attempt": 2,
        "trigger": "retry",
    }
    _log_finished(event, RunResult("20240702T032900Z-abcdef", status, error, error_class))
    return stream.getvalue()


def test_a_failure_is_one_text_line_with_job_run_slot_attempt_class_and_first_line(tmp_path, restore_logging):
    stream = io.StringIO()
    configure_logging(load_settings({"SHIOL_HOME": str(tmp_path)}), stream=stream)
    text = _event(stream, "failed", "step analyze_signals: cell 3 raised ValueError: bad\nTraceback ...", "cell error")
    assert text.count("\n") == 1
    assert (
        "job pipeline run 20240702T032900Z-abcdef slot 2024-07-02T03:29:00+00:00 attempt 2: finished failed "
        "[cell error] step analyze_signals: cell 3 raised ValueError: bad"
    ) in text
    assert "ERROR" in text and "Traceback" not in text


def test_json_lines_carry_the_event_fields_and_the_file_rotates(tmp_path, restore_logging):
    stream = io.StringIO()
    log_file = tmp_path / "log" / "shiol.log"
    log_file.parent.mkdir()
    settings = load_settings(
        {
            "SHIOL_HOME": str(tmp_path),
            "SHIOL_LOG_FORMAT": "json",
            "SHIOL_LOG_FILE": str(log_file),
            "SHIOL_LOG_MAX_BYTES": "2048",
            "SHIOL_LOG_BACKUPS": "2",
        }
    )
    configure_logging(settings, stream=stream)
    record = json.loads(_event(stream, "timeout", "the run exceeded its 1800 s wall-clock limit", "timeout"))
    assert record["job"] == "pipeline" and record["run_id"] == "20240702T032900Z-abcdef"
    assert record["attempt"] == 2 and record["status"] == "timeout" and record["error_class"] == "timeout"
    assert record["slot"] == "2024-07-02T03:29:00+00:00" and record["level"] == "ERROR"
    for n in range(100):
        logging.getLogger("shiol_lib.test").warning("line %d of a long log", n)
    assert sorted(p.name for p in log_file.parent.iterdir()) == ["shiol.log", "shiol.log.1", "shiol.log.2"]
    assert all(json.loads(line) for line in log_file.read_text().splitlines())


def test_configuring_twice_replaces_our_handlers(tmp_path, restore_logging):
    settings = load_settings({"SHIOL_HOME": str(tmp_path)})
    first, second = io.StringIO(), io.StringIO()
    configure_logging(settings, stream=first)
    configure_logging(settings, stream=second)
    logging.getLogger("shiol_lib.test").warning("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1


def test_rocketry_routine_task_lines_are_kept_out_but_trouble_passes(tmp_path, restore_logging):
    stream = io.StringIO()
    configure_logging(load_settings({"SHIOL_HOME": str(tmp_path)}), stream=stream)
    task = logging.getLogger("rocketry.task")
    for action in ("run", "success", "fail"):
        task.info(
            "Task 'post_drawing_pipeline' status: %r",
            action,
            extra={"action": action, "task_name": "post_drawing_pipeline"},
        )  # as Rocketry logs it
    text = stream.getvalue()
    assert "'success'" not in text and "'run'" not in text
    assert "'fail'" in text


def test_first_line():
    assert first_line("\n  boom: it broke \nmore") == "boom: it broke"
    assert first_line(None) is None and first_line("   ") is None
