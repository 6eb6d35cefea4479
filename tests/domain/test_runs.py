"""The run vocabulary: statuses that read as their strings, and the one failure-streak rule."""

from __future__ import annotations

import json

import pytest

from shiol_lib.domain.runs import (
    FAILURE_STATUSES,
    FINISHED_STATUSES,
    RunStatus,
    StepStatus,
    failure_streak,
    parse_status,
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
