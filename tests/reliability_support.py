"""The fault suite's table (docs/RELIABILITY.md): its categories, a session's tally, rendering and
reading the table, whether a session collected the whole suite, and writing the table when it did. The
hooks that count are in tests/faults/conftest.py; under pytest-xdist, each worker hands its tally to the
controller, whose hooks (tests/conftest.py) add them up and write the table once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FAULTS_DIR = Path(__file__).resolve().parent / "faults"
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
        "rejected with source, record and reason; nothing of the batch written; draws checksum unchanged",
    ),
    "ny-csv": Category(
        "NY CSV export rows (the bundled snapshot's layout) breaking a rule, or a malformed line",
        "rejected with source, record and reason; nothing of the file written; draws checksum unchanged",
    ),
    "ny-body": Category(
        "NY bodies that are not a list of records: HTML, truncated, null, deep nesting, oversize, HTTP errors",
        "a failure of NY, reported, then the bundled snapshot asked; draws checksum unchanged",
    ),
    "musl-drawing": Category(
        "MUSL drawings breaking a rule: values, Unicode digits, another game, bad status, item lists",
        "rejected with source and reason, then NY asked; draws checksum unchanged",
    ),
    "musl-body": Category(
        "MUSL bodies that are not one drawing: HTML, truncated, null, deep nesting, oversize, HTTP errors",
        "a failure of MUSL, reported, then NY asked; draws checksum unchanged",
    ),
    "musl-misdated": Category(
        "MUSL answering another drawing than the DrawDate asked",
        "reported as misdated, not stored, and the requested date asked of NY; draws checksum unchanged",
    ),
    "no-source": Category(
        "`shiol update-data` when no network source answers: HTTP 500/503, reset, timeout, all down, MUSL "
        "without a key and NY down; and the data-update job in the same state",
        'exit 10 and outcome `no source answered` (never "success"), last answer time unchanged; the '
        "job's run ends failed with error class fetch",
    ),
    "held-lock": Category(
        "the scheduler process while another process holds the DuckDB file (probes of /healthz)",
        "/healthz answers from memory while the lock is held, says 503 once the plan is stale, 200 again "
        "when the lock frees",
    ),
    "api-load": Category(
        "concurrent requests to /healthz, the health report and /metrics while a job runs",
        "every request answered (200, 429 or 503), the job finishes, /healthz 200 after",
    ),
    "alerts": Category(
        "incidents (failure streaks, a missed drawing) seen by a local webhook receiver and SMTP server",
        "exactly one open and one recovery message per incident on each channel",
    ),
    "disk-full": Category(
        "a full disk under the store and the archive: a tmpfs filled up (as root) under a store write and under "
        "a pipeline run, a simulated ENOSPC, a SIGKILL between commit and publish, recovery of a run whose "
        "folder never existed",
        "commit and stale snapshot both reported (exit 5), temp files removed at the next write, store and "
        "snapshot readable and equal after it; a run ends failed with error class disk_full (no traceback), "
        "every closed run has its ledger entry and verify says intact",
    ),
    "archive-tamper": Category(
        "tampering with runs/ and the store: edited pages, files and folders at every depth, a fabricated "
        "running row, a closed run's outputs in the store rewritten, changed, deleted or added (as a papermill "
        "rerun under its id would), a rollback with the key set (witness kept)",
        "`shiol runs verify` exits 8 naming what differs; the untouched archive exits 0, also after prune",
    ),
    "log-lines": Category(
        "a real `shiol schedule run` logging in text and in JSON to stderr and a log file: start-up, the API "
        "up, a data update that fails, its failure alert and ledger witness, SIGTERM",
        "each event exactly once on each sink, in the format asked (every JSON-mode line is JSON)",
    ),
    "settings": Category(
        "every number, URL, key/token and log-file setting with hostile values (non-ASCII digits, hex, NaN, "
        "URLs without a host, keys of blanks, a log folder missing or a folder as the file), each given to a "
        "real `shiol` command",
        "exit 2 with one line naming the variable, no traceback, nothing written under SHIOL_HOME",
    ),
    "liveness": Category(
        "bursts of /healthz probes on a real server while requests to the health report and /metrics fill "
        "its connection cap",
        "every /healthz probe answers 200 within its 5 s deadline; the expensive requests over the cap get "
        "503, the rest 200",
    ),
    "leaked-processes": Category(
        "SIGTERM and SIGINT to a real `shiol lab` with a kernel running, and to a real `shiol run pipeline` in "
        "its first step",
        "the command exits (a run never with success) and no process it started (jupyter-lab, kernels, the "
        "step's watchdog) is left running",
    ),
    "slow-answers": Category(
        "a second start of each job while a real process holds it; a run's process killed (SIGKILL) on this "
        "host with its heartbeat still fresh",
        "the start is refused (exit 9, recorded refused) before the runner is imported or a process started; "
        "`status` and `schedule plan` (text and JSON) name the dead run at once",
    ),
    "unit-checks": Category(
        "the service-unit tests run in a pytest of their own from a copy of the checkout in each temporary "
        "folder a CI clone may lie in (/tmp, /var/tmp, a build folder deep in /tmp)",
        "every test runs and passes, none skipped",
    ),
}


@dataclass
class Tally:
    """What a session tried and held, per category, and whether it covered the whole suite."""

    tried: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    expected: set[str] = field(default_factory=set)  # node ids of the collected fault tests
    reported: set[str] = field(default_factory=set)
    deselected: bool = False


TALLY = Tally()  # what this process counted: one session per process (one worker's share under xdist)
WORKER_TALLIES = Tally()  # on the xdist controller: the tallies its workers handed over, added up
OUTPUT_KEY = "shiol_fault_tally"  # the workers' tallies in xdist's workeroutput


def tally_as_output(tally: Tally) -> dict[str, Any]:
    """A worker's tally as plain data (what xdist carries to the controller)."""
    return {
        "tried": dict(tally.tried),
        "held": dict(tally.held),
        "skipped": list(tally.skipped),
        "expected": sorted(tally.expected),
        "reported": sorted(tally.reported),
        "deselected": tally.deselected,
    }


def add_output(tally: Tally, output: dict[str, Any]) -> None:
    """Add one worker's tally to ``tally``: cases summed, node ids gathered, a deselection kept."""
    for name, count in output["tried"].items():
        tally.tried[name] = tally.tried.get(name, 0) + count
    for name, count in output["held"].items():
        tally.held[name] = tally.held.get(name, 0) + count
    tally.skipped.extend(output["skipped"])
    tally.expected.update(output["expected"])  # every worker collects the whole session
    tally.reported.update(output["reported"])
    tally.deselected = tally.deselected or output["deselected"]


def write_when_whole(config: pytest.Config, exitstatus: int, tally: Tally) -> bool:
    """Write docs/RELIABILITY.md when ``tally`` covers the whole fault suite of a run not interrupted."""
    complete = (
        os.environ.get("SHIOL_WRITE_RELIABILITY", "1") != "0"
        and exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)
        and covers_suite(config.args, Path(config.invocation_params.dir))
        and not tally.deselected
        and bool(tally.expected)
        and tally.expected <= tally.reported
    )
    if complete:
        RELIABILITY_MD.write_text(render_table(tally), encoding="utf-8")
    return complete


def covers_suite(args: list[str], invocation_dir: Path) -> bool:
    """Whether the command line collected the whole of tests/faults (no file or test id inside it)."""
    for arg in args:
        if "::" in arg:
            continue
        path = (Path(invocation_dir) / arg).resolve()
        if FAULTS_DIR.is_relative_to(path):
            return True
    return False


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


def read_table(text: str) -> dict[str, tuple[int, int]]:
    """The rows of a rendered table: category -> (cases, held); the total row left out."""
    rows = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\| ([a-z-]+) \| .* \| (\d+) \| (\d+) \| .* \|", line)
        if match:
            rows[match[1]] = (int(match[2]), int(match[3]))
    return rows
