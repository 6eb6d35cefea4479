"""The run vocabulary: statuses that read as their strings, the one failure-streak rule, the retry rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shiol_lib.domain.runs import (
    FAILURE_STATUSES,
    FINISHED_STATUSES,
    RunStatus,
    StepStatus,
    failure_streak,
    parse_status,
    retry_outlook,
)


def test_statuses_are_their_strings_in_json_sets_and_formatting() -> None:
    assert RunStatus.SUCCESS == "success" and "success" in FINISHED_STATUSES
    assert json.dumps({"status": RunStatus.CRASHED}) == '{"status": "crashed"}'
    assert f"{StepStatus.PENDING}" == "pending" and str(RunStatus.TIMEOUT) == "timeout"
    assert FAILURE_STATUSES < FINISHED_STATUSES
    assert RunStatus.RUNNING not in FINISHED_STATUSES and RunStatus.REFUSED not in FINISHED_STATUSES


@pytest.mark.parametrize(
    ("newest_first", "streak"),
    [
        ([], 0),
        (["failed", "timeout", "crashed", "success", "failed"], 3),
        (["running", "refused", "failed", "missed", "failed", "waiting", "failed"], 2),
        (["success", "failed", "failed"], 0),
        (["interrupted", "failed"], 0),
        (["skipped", "failed"], 0),
        (["running", "refused"], 0),
    ],
)
def test_the_failure_streak_counts_finished_failures_back_from_the_newest(newest_first: list[str], streak: int) -> None:
    assert failure_streak(newest_first) == streak


def test_an_unknown_status_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="'exploded' is not one of running, success"):
        parse_status("exploded")
    assert parse_status("pending", StepStatus) is StepStatus.PENDING


FINISHED = datetime(2024, 7, 1, 4, 0, tzinfo=UTC)
BACKOFF = (60.0, 120.0)  # three attempts


@pytest.mark.parametrize(
    ("status", "attempt", "free", "state", "after_s", "used"),
    [
        ("failed", 1, 0, "retry", 60, 1),
        ("timeout", 2, 0, "retry", 120, 2),
        ("failed", 3, 0, "exhausted", None, 3),
        ("crashed", 1, 0, "recovery", 0, 1),
        ("interrupted", 3, 0, "exhausted", None, 3),
        ("waiting", 1, 0, "waiting", 60, 0),
        ("waiting", 5, 4, "waiting", 120, 0),  # waiting attempts are free; the backoff caps at its last delay
        ("failed", 4, 2, "retry", 120, 2),  # two earlier waiting attempts did not count
        ("success", 1, 0, "none", None, 1),
        ("refused", 1, 0, "none", None, 1),
    ],
)
def test_the_retry_outlook_follows_the_backoff_and_the_attempt_budget(
    status, attempt, free, state, after_s, used
) -> None:
    outlook = retry_outlook(status, attempt, FINISHED, BACKOFF, free_attempts=free)
    assert (outlook.state, outlook.attempts_used, outlook.max_attempts) == (state, used, 3)
    assert outlook.due_at == (None if after_s is None else FINISHED + timedelta(seconds=after_s))


def test_the_retry_outlook_refuses_an_empty_backoff() -> None:
    with pytest.raises(ValueError, match="at least one positive delay"):
        retry_outlook("failed", 1, FINISHED, ())
