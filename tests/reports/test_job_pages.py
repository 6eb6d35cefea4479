"""A page per job (``runs/<job>/index.html``), linked from the dashboard and recorded like it.

The page shows the definition (secrets by name only), the next slots, the pause state, the success rate
and durations of the recent runs, the job's missed slots and dead letters; a job whose definition is
gone keeps a page of its runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shiol_lib.archive import folders as archive
from shiol_lib.archive.coverage import check_pages
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.archive.pages import read_pages
from shiol_lib.domain.runs import MissedKind, RunStatus, StepStatus
from shiol_lib.jobs.definitions.live import job_pages
from shiol_lib.reports import dashboard
from shiol_lib.reports.job_pages import JobPage
from shiol_lib.settings import load_settings
from shiol_lib.store.jobs import DeadLetter
from shiol_lib.store.monitoring import MissedSlot

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(runs_dir: Path, job: str, hours_ago: int, status: RunStatus, seconds: float) -> Manifest:
    started = NOW - timedelta(hours=hours_ago)
    manifest = Manifest(
        run_id=archive.new_run_id(started),
        job=job,
        trigger="on-time",
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
        steps=[StepRecord("freq", "freq.ipynb", StepStatus(status), html="freq.html")],
        error="step freq: boom" if status == RunStatus.FAILED else None,
    )
    directory = archive.run_dir(runs_dir, job, manifest.run_id, started)
    directory.mkdir(parents=True)
    (directory / "freq.html").write_text("<p>report</p>")
    archive.write_manifest(directory, manifest)
    return manifest


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[Manifest]]:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    manifests = [
        _run(runs_dir, "weekly", 30, RunStatus.SUCCESS, 4.0),
        _run(runs_dir, "weekly", 20, RunStatus.FAILED, 2.0),
        _run(runs_dir, "weekly", 10, RunStatus.SUCCESS, 6.0),
        _run(runs_dir, "retired", 5, RunStatus.SUCCESS, 1.0),
    ]
    weekly = JobPage(
        "weekly",
        "draw frequencies",
        "cron 0 7 * * 1 (America/New_York)",
        False,
        False,
        ("2026-12-14T07:00:00-05:00", "2026-12-21T07:00:00-05:00"),
        {"parameters": {"recent": 30}, "secrets": ["MY_TOKEN"], "store": "read"},
    )
    letter = DeadLetter(
        "dl1", "weekly", NOW - timedelta(hours=20), None, 3, manifests[1].run_id, "cell error", "boom",
        "freq.ipynb", 2, "shiol run weekly --trigger manual", NOW, None, None,
    )  # fmt: skip
    missed = MissedSlot("weekly", NOW - timedelta(days=3), None, MissedKind.SLOT, NOW)
    dashboard.write_index(runs_dir, now=NOW, jobs=[weekly], dead_letters=[letter], missed=[missed])
    return runs_dir, manifests


def test_each_job_has_a_page_with_its_definition_slots_record_and_problems(written) -> None:
    runs_dir, manifests = written
    page = (runs_dir / "weekly" / "index.html").read_text()
    assert "2 of 3 finished runs succeeded (67 %)" in page and "median 4.0 s, longest 6.0 s" in page
    assert "2026-12-14T07:00:00-05:00" in page and "2026-12-21T07:00:00-05:00" in page
    assert "recent" in page and "MY_TOKEN" in page and "active" in page
    assert "shiol run weekly --trigger manual" in page and "missed slot" in page
    for manifest in manifests[:3]:  # every run listed, linked to its own page
        folder = archive.find_run_dir(runs_dir, manifest.run_id)
        rel = folder.relative_to(runs_dir).as_posix()
        assert f'href="../{rel}/index.html"' in page and (folder / "index.html").is_file()
    retired = (runs_dir / "retired" / "index.html").read_text()
    assert "no longer defined" in retired and manifests[3].run_id in retired


def test_the_dashboard_links_each_job_page_and_the_record_holds_them(written) -> None:
    runs_dir, _ = written
    index = (runs_dir / "index.html").read_text()
    assert '<a href="weekly/index.html">weekly</a>' in index and '<a href="retired/index.html">retired</a>' in index
    record = read_pages(runs_dir)
    assert record is not None and {"weekly/index.html", "retired/index.html"} <= set(record.pages)
    problems, _ = check_pages(runs_dir, [], key=None)
    assert not problems
    (runs_dir / "weekly" / "index.html").write_text("<p>EDGE FOUND</p>")
    problems, _ = check_pages(runs_dir, [], key=None)
    assert any("weekly/index.html" in str(p) for p in problems)


def test_job_pages_come_from_the_definitions_in_force(tmp_path: Path) -> None:
    (tmp_path / "jobs.toml").write_text(
        "[[job]]\nname = 'weekly'\nnotebooks = 'exploratory/1.0-shw-draw-frequencies.ipynb'\n"
        "schedule = { cron = '0 7 * * 1', timezone = 'Europe/London' }\nsecrets = ['MY_TOKEN']\n"
        "[[job]]\nname = 'held'\nnotebooks = 'exploratory/1.0-shw-draw-frequencies.ipynb'\n"
        "schedule = { cron = '0 7 * * *' }\npaused = true\n",
        encoding="utf-8",
    )
    settings = load_settings({"SHIOL_HOME": str(tmp_path), "SHIOL_NOTEBOOKS_DIR": str(NOTEBOOKS)})
    pages = {p.name: p for p in job_pages(settings, NOW)}
    weekly = pages["weekly"]
    assert weekly.next_slots[0] == "2026-12-14T02:00:00-05:00"  # Monday 07:00 in London
    assert len(weekly.next_slots) == 5 and weekly.definition["secrets"] == ["MY_TOKEN"]
    assert pages["held"].paused and pages["held"].next_slots == ()
    assert pages["research_power"].next_slots == () and pages["pipeline"].next_slots
    assert date.fromisoformat(pages["pipeline"].next_slots[0][:10]).weekday() in (0, 2, 5)  # a draw day
