"""The dashboard's "next retry" for failed runs: real runs in a real store and archive, the rendered HTML.

A scheduled ``data_update`` whose step fails is run as attempts 1, 2 and 3 of one slot (backoff 60 s,
120 s: three attempts). After each, ``runs/index.html`` and the run pages say what comes next: the
retry's time in New York and UTC (the instant the scheduler's planner makes it due, read from the same
store), "superseded by run X" once the next attempt ran, and "no retry left (attempt 3 of 3)" at the end.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from shiol_lib.archive import folders as archive
from shiol_lib.archive.manifest import Manifest
from shiol_lib.domain.runs import Trigger
from shiol_lib.domain.slots import parse_cron, previous_slot
from shiol_lib.jobs.context import RunContext
from shiol_lib.jobs.run import run_job
from shiol_lib.reports import dashboard as run_index
from shiol_lib.reports.retry_lines import format_instant, retry_lines
from shiol_lib.scheduling.planner import plan_runs
from shiol_lib.scheduling.scheduler import planner_config, read_history
from shiol_lib.settings import load_settings
from shiol_lib.store import open_store

REPO = Path(__file__).resolve().parents[2]


def failing_notebooks(folder: Path) -> Path:
    """The notebooks, with step 1 replaced by one that declares its parameters and fails in a cell."""
    shutil.copytree(REPO / "notebooks", folder)
    nb = nbformat.read(REPO / "tests" / "notebooks" / "broken.ipynb", as_version=4)
    original = nbformat.read(folder / "10_update_data.ipynb", as_version=4)
    ours = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    ours.source = (
        next(c for c in original.cells if "parameters" in c.metadata.get("tags", [])).source + "\n" + ours.source
    )
    nbformat.write(nb, folder / "10_update_data.ipynb")
    return folder


def rows_of(page: str, run_id: str) -> list[str]:
    """The table rows of a run (in the runs table and the failed-runs table)."""
    rows = re.findall(r"<tr class=\"filterable\".*?</tr>", page, flags=re.S)
    return [row for row in rows if f"<code>{run_id}</code>" in row]


@pytest.mark.slow
def test_failed_attempts_show_their_next_retry_then_superseded_then_none_left(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "SHIOL_HOME": str(tmp_path / "home"),
            "SHIOL_RETRY_BACKOFF_S": "60,120",
            "SHIOL_NOTEBOOKS_DIR": str(failing_notebooks(tmp_path / "notebooks")),
            "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
            "SHIOL_HTTP_RETRIES": "0",
        }
    )
    config = planner_config(settings)
    slot = previous_slot(parse_cron(settings.update_cron), datetime.now(UTC))
    outcomes = []
    for attempt in (1, 2, 3):
        context = RunContext(trigger=Trigger.ON_TIME if attempt == 1 else Trigger.RETRY, slot=slot, attempt=attempt)
        outcome = run_job(settings, "data_update", context=context, offline=True)
        assert outcome.status == "failed" and outcome.manifest.attempt == attempt
        outcomes.append(outcome)
        page = (settings.runs_dir / "index.html").read_text()
        latest = outcome.manifest
        if attempt < 3:  # the next retry, where the planner (same store, same settings) makes it due
            due = latest.finished_at + timedelta(seconds=settings.retry_backoff_s[attempt - 1])
            expected = f"next retry at {format_instant(due)} (attempt {attempt + 1} of 3)"
            assert expected in page, rows_of(page, latest.run_id)
            store = open_store(settings.db_path, settings.snapshot_path)
            early = due - timedelta(seconds=1)
            before, at_due = (
                plan_runs(read_history(store, early), early, config),
                plan_runs(read_history(store, due), due, config),
            )
            assert not [d for d in before.due if d.job == "data_update"]
            assert [(d.reason, d.attempt) for d in at_due.due if d.job == "data_update"] == [("retry", attempt + 1)]
        else:
            assert "no retry left (attempt 3 of 3)" in page
        rows = rows_of(page, latest.run_id)
        assert len(rows) == 2 and all("ZeroDivisionError" in row for row in rows), rows  # the error line
        run_page = (outcome.directory / "index.html").read_text()
        assert 'id="next-retry"' in run_page
    first, second, third = outcomes
    page = (settings.runs_dir / "index.html").read_text()
    for older, newer in ((first, second), (second, third)):
        assert f"superseded by run {newer.run_id} (its next attempt)" in page
        link = f"{Path(newer.directory).relative_to(settings.runs_dir).as_posix()}/index.html"
        assert f'href="{link}">open it</a>' in page
        assert f"superseded by run {newer.run_id}" in (older.directory / "index.html").read_text()
    failed_section = page.split('id="failed"')[1].split("</section>")[0]
    assert all(o.run_id in failed_section for o in outcomes) and failed_section.count("ZeroDivisionError") == 3


def manifest(
    run_id: str, status: str, started: datetime, *, slot: datetime | None, attempt: int = 1, job: str = "data_update"
) -> Manifest:
    return Manifest(
        run_id=run_id,
        job=job,
        trigger="retry" if attempt > 1 else "on-time",
        status=status,
        started_at=started,
        finished_at=started + timedelta(minutes=1),
        slot=slot,
        attempt=attempt,
        steps=[],
    )


def test_manual_waiting_overdue_and_newer_slot_runs_read_as_such(tmp_path: Path) -> None:
    t0 = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    runs = [
        manifest("20240701T100000Z-aaaaaa", "failed", t0, slot=None),
        manifest("20240701T100100Z-bbbbbb", "failed", t0 + timedelta(minutes=1), slot=t0),
        manifest("20240702T100000Z-cccccc", "success", t0 + timedelta(days=1), slot=t0 + timedelta(days=1)),
        manifest("20240701T110000Z-dddddd", "waiting", t0 + timedelta(hours=1), slot=t0, job="pipeline"),
        manifest("20240701T120000Z-eeeeee", "crashed", t0 + timedelta(hours=2), slot=t0, job="evaluation"),
    ]
    lines = retry_lines(runs, (60.0, 120.0, 240.0), now=t0 + timedelta(hours=5))
    assert lines["20240701T100000Z-aaaaaa"].text == "no automatic retry (a manual run)"
    assert lines["20240701T100100Z-bbbbbb"].superseded_by == "20240702T100000Z-cccccc"
    assert "(a run for a newer slot or drawing)" in lines["20240701T100100Z-bbbbbb"].text
    assert lines["20240701T110000Z-dddddd"].text.startswith(
        "next check for the results at 2024-07-01 07:02 EDT (2024-07-01 11:02 UTC) (overdue"
    )
    assert lines["20240701T120000Z-eeeeee"].text.startswith("next recovery run at 2024-07-01 08:01 EDT")
    assert "20240702T100000Z-cccccc" not in lines
    for m in runs:  # the same lines in the rendered dashboard, as text
        folder = archive.run_dir(tmp_path, m.job, m.run_id, m.started_at)
        folder.mkdir(parents=True)
        archive.write_manifest(folder, m)
    page = run_index.write_index(
        tmp_path, retry_backoff_s=(60.0, 120.0, 240.0), now=t0 + timedelta(hours=5)
    ).read_text()
    assert "no automatic retry (a manual run)" in page and "next recovery run at 2024-07-01 08:01 EDT" in page


def test_a_job_with_retries_of_its_own_is_shown_on_its_own_delays() -> None:
    t0 = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    runs = [
        manifest("20240701T100000Z-aaaaaa", "failed", t0, slot=t0, job="nightly"),
        manifest("20240701T100000Z-bbbbbb", "failed", t0, slot=t0, job="data_update"),
        manifest("20240701T100000Z-cccccc", "failed", t0, slot=t0, job="no_retries"),
    ]
    own = {"nightly": (1800.0,), "no_retries": ()}
    lines = retry_lines(runs, (60.0, 120.0, 240.0), now=t0, job_backoff_s=own)
    # Failed at 10:01 UTC: the job's own 30 minutes, the settings' 1 minute, and no retry at all.
    assert "2024-07-01 06:31 EDT (2024-07-01 10:31 UTC)" in lines["20240701T100000Z-aaaaaa"].text
    assert "2024-07-01 06:02 EDT (2024-07-01 10:02 UTC)" in lines["20240701T100000Z-bbbbbb"].text
    assert lines["20240701T100000Z-cccccc"].text == "no retry left (attempt 1 of 1)"
