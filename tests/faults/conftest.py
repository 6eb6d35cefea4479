"""The fault suite's figures: every fault test counts its cases under a category, and a complete run of
the suite writes them to docs/RELIABILITY.md.

A fault test names its category with the marker (``pytest.mark.faults("held-lock")``; a parametrized
case may carry its own) and, when one test tries several cases, says how many with the
``fault_cases`` fixture (``fault_cases(200)``); otherwise a test is one case. A test that passed held
all its cases; one that failed held none; a skipped one tried none (its reason goes under the table).

The table is written at the end of a session that ran the whole suite: collection covered all of
tests/faults (no file or test id picked out of it), nothing in it was deselected (``-k``, ``--lf``) and
every test in it reported, and the run was not interrupted. So `pytest -m faults`, `pytest` and CI's
`scripts/test.sh` rewrite it; a partial run never does. ``SHIOL_WRITE_RELIABILITY=0`` turns writing off.

Under pytest-xdist (``-n 2``) each worker counts the fault tests it ran and hands its tally to the
controller as it finishes (xdist's ``workeroutput``); the controller adds them up (tests/conftest.py) and
alone writes the table, once, with every case. A worker that crashed hands nothing: its cases are missing,
so nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

import pytest
from reliability_support import CATEGORIES, FAULTS_DIR, OUTPUT_KEY, TALLY, tally_as_output, write_when_whole


def category_of(item: pytest.Item) -> str | None:
    """The category named by the closest ``faults`` marker that names one (None: not counted)."""
    for mark in item.iter_markers("faults"):
        if mark.args:
            return str(mark.args[0])
    return None


def _in_suite(path: Path | str) -> bool:
    return Path(path).resolve().is_relative_to(FAULTS_DIR)


@pytest.fixture
def fault_cases(request: pytest.FixtureRequest) -> Callable[[int], None]:
    """Say how many cases this test tries (call it before the first assertion that can fail)."""

    def record(count: int) -> None:
        request.node.user_properties.append(("fault_cases", count))

    return record


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Check every fault test's category, and note which fault tests are to run."""
    for item in items:
        if not _in_suite(item.path) or (category := category_of(item)) is None:
            continue
        if category not in CATEGORIES:
            raise pytest.UsageError(
                f"{item.nodeid}: fault category {category!r} is not one of "
                f"{sorted(CATEGORIES)} (tests/faults/conftest.py)"
            )
        TALLY.expected.add(item.nodeid)


def pytest_deselected(items: list[pytest.Item]) -> None:
    """A deselected fault test makes the session's figures partial."""
    if any(_in_suite(item.path) for item in items):
        TALLY.deselected = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Count one finished fault test: its cases tried, and held if it passed."""
    report = yield
    category = category_of(item)
    if category is None or item.nodeid in TALLY.reported:
        return report
    cases = int(dict(item.user_properties).get("fault_cases", 1))
    if report.skipped:
        TALLY.reported.add(item.nodeid)
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        TALLY.skipped.append(f"`{item.name}` ({category}): {reason.removeprefix('Skipped: ')}")
    elif report.when == "call" or report.failed:
        TALLY.reported.add(item.nodeid)
        TALLY.tried[category] = TALLY.tried.get(category, 0) + cases
        if report.passed:
            TALLY.held[category] = TALLY.held.get(category, 0) + cases
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write docs/RELIABILITY.md when this session ran the whole fault suite; an xdist worker hands its
    tally to the controller instead, and the controller writes from its workers' tallies (tests/conftest.py)."""
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[OUTPUT_KEY] = tally_as_output(TALLY)
    elif not config.pluginmanager.hasplugin("dsession"):
        write_when_whole(config, exitstatus, TALLY)
