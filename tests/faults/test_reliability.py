"""docs/RELIABILITY.md cannot drift from the suite: its rows are the suite's categories, every one tried
and held, and a partial run is never taken for the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import (
    CATEGORIES,
    FAULTS_DIR,
    RELIABILITY_MD,
    Tally,
    add_output,
    covers_suite,
    read_table,
    render_table,
    tally_as_output,
)

pytestmark = pytest.mark.faults  # no category: the table's own checks are not faults tried

CORPUS = ("ny-record", "ny-csv", "ny-body", "musl-drawing", "musl-body", "musl-misdated")


def test_the_committed_table_has_the_suites_categories_each_tried_and_held() -> None:
    rows = read_table(RELIABILITY_MD.read_text(encoding="utf-8"))
    assert list(rows) == list(CATEGORIES)
    assert all(cases > 0 and held == cases for cases, held in rows.values()), rows
    assert sum(rows[name][0] for name in CORPUS) >= 80  # the bad-record corpus of issue 10
    assert rows["api-load"][0] >= 200


def test_a_rendered_table_reads_back_with_its_figures() -> None:
    tally = Tally(
        tried={"alerts": 6, "disk-full": 1},
        held={"alerts": 6},
        skipped=["`test_x` (disk-full): mount is not permitted"],
    )
    text = render_table(tally)
    rows = read_table(text)
    assert list(rows) == list(CATEGORIES)
    assert rows["alerts"] == (6, 6) and rows["disk-full"] == (1, 0) and rows["held-lock"] == (0, 0)
    assert "pytest -m faults" in text and "mount is not permitted" in text


@pytest.mark.parametrize(
    ("args", "whole"),
    [
        (["tests"], True),
        (["."], True),
        (["tests/faults"], True),
        (["tests/faults/"], True),
        (["tests/store", "tests/faults"], True),
        (["tests/faults/test_disk_full.py"], False),
        (["tests/faults::test_x"], False),
        (["tests/store"], False),
        (["tests/faults/test_reliability.py::test_a"], False),
    ],
)
def test_only_a_run_that_collects_all_of_tests_faults_counts_as_whole(args: list[str], whole: bool) -> None:
    repo = FAULTS_DIR.parents[1]
    assert covers_suite(args, repo) is whole
    assert covers_suite([str(repo / a) for a in args], Path("/")) is whole  # absolute paths alike


def test_two_xdist_workers_tallies_add_up_to_the_table_of_one_process() -> None:
    one = Tally(
        tried={"alerts": 6, "disk-full": 3, "held-lock": 2},
        held={"alerts": 6, "disk-full": 2, "held-lock": 2},
        skipped=["`test_x` (disk-full): mount is not permitted"],
        expected={"a", "b", "c", "d"},
        reported={"a", "b", "c", "d"},
    )
    first = Tally(tried={"alerts": 4, "disk-full": 3}, held={"alerts": 4, "disk-full": 2}, reported={"a", "b"})
    second = Tally(
        tried={"alerts": 2, "held-lock": 2},
        held={"alerts": 2, "held-lock": 2},
        skipped=["`test_x` (disk-full): mount is not permitted"],
        reported={"c", "d"},
    )
    first.expected = second.expected = {"a", "b", "c", "d"}  # each worker collects the whole session
    controller = Tally()
    for worker in (first, second):
        add_output(controller, tally_as_output(worker))
    assert render_table(controller) == render_table(one)
    assert controller.expected <= controller.reported and not controller.deselected
    add_output(controller, tally_as_output(Tally(deselected=True)))  # one worker's deselection makes it partial
    assert controller.deselected
