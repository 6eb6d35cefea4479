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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FAULTS_DIR = Path(__file__).resolve().parent
RELIABILITY_MD = FAULTS_DIR.parents[1] / "docs" / "RELIABILITY.md"
COMMAND = "pytest -m faults"


@dataclass(frozen=True)
class Category:
    """One row of the table: what was tried, and what must hold for a case to count as held."""

    tried: str
    holds: str


# The rows, in table order. A fault test whose category is not here is a collection error.
CATEGORIES: dict[str, Category] = {
    "ny-record": Category(
        "NY Open Data JSON records breaking a validation rule or of the wrong JSON type, beside valid ones",
        "rejected with source, record and reason; nothing of the batch written; draws checksum unchanged"),
    "ny-csv": Category(
        "NY CSV export rows (the bundled snapshot's layout) breaking a rule, or a malformed line",
        "rejected with source, record and reason; nothing of the file written; draws checksum unchanged"),
    "ny-body": Category(
        "NY bodies that are not a list of records: HTML, truncated, null, deep nesting, oversize, HTTP errors",
        "a failure of NY, reported, then the bundled snapshot asked; draws checksum unchanged"),
    "musl-drawing": Category(
        "MUSL drawings breaking a rule: values, Unicode digits, another game, bad status, item lists",
        "rejected with source and reason, then NY asked; draws checksum unchanged"),
    "musl-body": Category(
        "MUSL bodies that are not one drawing: HTML, truncated, null, deep nesting, oversize, HTTP errors",
        "a failure of MUSL, reported, then NY asked; draws checksum unchanged"),
    "musl-misdated": Category(
        "MUSL answering another drawing than the DrawDate asked",
        "reported as misdated, not stored, and the requested date asked of NY; draws checksum unchanged"),
    "held-lock": Category(
        "the scheduler process while another process holds the DuckDB file (probes of /healthz)",
        "/healthz answers from memory while the lock is held, says 503 once the plan is stale, 200 again "
        "when the lock frees"),
    "api-load": Category(
        "concurrent requests to /healthz, the health report and /metrics while a job runs",
        "every request answered (200, 429 or 503), the job finishes, /healthz 200 after"),
    "alerts": Category(
        "incidents (failure streaks, a missed drawing) seen by a local webhook receiver and SMTP server",
        "exactly one open and one recovery message per incident on each channel"),
    "disk-full": Category(
        "a full disk under the store: a tmpfs filled up (as root), a simulated ENOSPC, a SIGKILL between "
        "commit and publish",
        "commit and stale snapshot both reported (exit 5), temp files removed at the next write, store "
        "and snapshot readable and equal after it"),
}


def category_of(item: pytest.Item) -> str | None:
    """The category named by the closest ``faults`` marker that names one (None: not counted)."""
    for mark in item.iter_markers("faults"):
        if mark.args:
            return str(mark.args[0])
    return None


@dataclass
class Tally:
    """What a session tried and held, per category, and whether it covered the whole suite."""

    tried: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)  # node ids of the collected fault tests
    reported: set[str] = field(default_factory=set)
    deselected: bool = False


TALLY = Tally()  # one session per process


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
            raise pytest.UsageError(f"{item.nodeid}: fault category {category!r} is not one of "
                                    f"{sorted(CATEGORIES)} (tests/faults/conftest.py)")
        TALLY.expected.add(item.nodeid)


def pytest_deselected(items: list[pytest.Item]) -> None:
    """A deselected fault test makes the session's figures partial."""
    if any(_in_suite(item.path) for item in items):
        TALLY.deselected = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                           pytest.TestReport]:
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


def _covers_suite(config: pytest.Config) -> bool:
    """Whether the command line collected the whole of tests/faults (no file or test id inside it)."""
    root = Path(config.invocation_params.dir)
    for arg in config.args:
        if "::" in arg:
            continue
        path = (root / arg).resolve()
        if FAULTS_DIR.is_relative_to(path):
            return True
    return False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write docs/RELIABILITY.md when this session ran the whole fault suite."""
    config, tally = session.config, TALLY
    complete = (
        os.environ.get("SHIOL_WRITE_RELIABILITY", "1") != "0"
        and exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR,
                               pytest.ExitCode.USAGE_ERROR)
        and _covers_suite(config) and not tally.deselected
        and tally.expected and tally.expected <= tally.reported
    )
    if complete:
        RELIABILITY_MD.write_text(render_table(tally), encoding="utf-8")


def render_table(tally: Tally) -> str:
    """docs/RELIABILITY.md: one row per category, the reproducing command, and any skip."""
    lines = [
        "# Reliability: the fault suite's figures",
        "",
        "Written by the fault suite itself (tests/faults/conftest.py) at the end of a run of the whole suite; "
        "do not edit by hand. A case is one fault tried; it *held* when every assertion of its test passed. "
        "Every fault is real where it can be: a real DuckDB file, real HTTP and SMTP servers on 127.0.0.1, "
        "real processes and signals, a real full filesystem.",
        "",
        f"Reproduce: `{COMMAND}` (from the repository root, with the project's virtualenv; "
        "`bash scripts/test.sh` runs it too, with the rest of the suite).",
        "",
        "| fault | what was tried | cases | held | what must hold |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for name, category in CATEGORIES.items():
        tried, held = tally.tried.get(name, 0), tally.held.get(name, 0)
        lines.append(f"| {name} | {category.tried} | {tried} | {held} | {category.holds} |")
    total_tried, total_held = sum(tally.tried.values()), sum(tally.held.values())
    lines.append(f"| **total** | | **{total_tried}** | **{total_held}** | |")
    if tally.skipped:
        lines += ["", "Not tried in this run:", "", *(f"- {line}" for line in sorted(tally.skipped))]
    return "\n".join(lines) + "\n"
