"""The dashboard at scale: a first page of two weeks, older runs in month chunks, paged and filtered offline.

A run close rewrites only what changed (``write_index(incremental=True)``): its pages, chunks and record
equal a whole rewrite's. In a real headless Chromium (Playwright driving Debian's ``/usr/bin/chromium``,
as in test_dashboard_browser.py) the dashboard opened from ``file:`` loads the chunks on demand, pages
through the older runs, reaches a run on a later page, and filters across every run.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shiol_lib.archive import folders as archive
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.archive.pages import CHUNK_DIR, PAGES
from shiol_lib.domain.draw_calendar import NEW_YORK
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.reports import dashboard

CHROMIUM = Path("/usr/bin/chromium")
JOBS = ("pipeline", "data_update", "evaluation")
RUNS = 300  # one every 8 hours: 100 days, four months of chunks
START = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
NOW = START + timedelta(days=101)


def _add_run(runs_dir: Path, i: int) -> Manifest:
    started = START + timedelta(hours=8 * i)
    job = JOBS[i % 3]
    status = RunStatus.FAILED if i % 17 == 0 else RunStatus.SUCCESS
    manifest = Manifest(
        run_id=archive.new_run_id(started),
        job=job,
        trigger="on-time",
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=30),
        steps=[StepRecord("update_data", "10_update_data.ipynb", StepStatus(status), html="10_update_data.html")],
        error="step update_data: <b>boom</b>" if status == RunStatus.FAILED else None,
    )
    directory = archive.run_dir(runs_dir, job, manifest.run_id, started)
    directory.mkdir(parents=True)
    (directory / "10_update_data.html").write_text(f"<p>report of {manifest.run_id}</p>")
    archive.write_manifest(directory, manifest)
    return manifest


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Manifest]]:
    runs_dir = tmp_path_factory.mktemp("paging") / "runs"
    runs_dir.mkdir()
    manifests = [_add_run(runs_dir, i) for i in range(RUNS)]
    dashboard.write_index(runs_dir, now=NOW)
    return runs_dir, manifests


def _snapshot(runs_dir: Path) -> dict[str, bytes]:
    files = [runs_dir / "index.html", *sorted((runs_dir / CHUNK_DIR).iterdir()), *runs_dir.glob("*/*/*/index.html")]
    return {p.relative_to(runs_dir).as_posix(): p.read_bytes() for p in files}


def test_a_run_close_rewrites_only_what_changed_and_equals_a_whole_rewrite(runs, tmp_path: Path) -> None:
    source, _ = runs
    closing, whole = tmp_path / "closing", tmp_path / "whole"
    shutil.copytree(source, closing)
    old_chunks = {p.name: p.stat().st_mtime_ns for p in (closing / CHUNK_DIR).iterdir()}
    old_pages = {p: p.stat().st_mtime_ns for p in closing.glob("*/*/*/index.html")}
    _add_run(closing, RUNS)  # the run that closes
    shutil.copytree(closing, whole)
    dashboard.write_index(closing, now=NOW, incremental=True)
    dashboard.write_index(whole, now=NOW)
    assert _snapshot(closing) == _snapshot(whole)
    assert json.loads((closing / PAGES).read_text())["pages"] == json.loads((whole / PAGES).read_text())["pages"]
    rewritten = [p for p, t in old_pages.items() if p.stat().st_mtime_ns != t]
    assert len(rewritten) < 10  # the window's runs whose retry line moved on, at most; never the whole archive
    chunks = {p.name: p.stat().st_mtime_ns for p in (closing / CHUNK_DIR).iterdir()}
    assert [n for n in old_chunks if chunks[n] != old_chunks[n]] == [sorted(old_chunks)[-1]]  # the newest month only


def test_the_first_page_holds_two_weeks_and_the_chunks_every_run(runs) -> None:
    runs_dir, manifests = runs
    page = (runs_dir / "index.html").read_text()
    days = [m.started_at.astimezone(NEW_YORK).date() for m in manifests]
    first = [m for m, day in zip(manifests, days, strict=True) if day >= max(days) - timedelta(days=13)]
    assert page.count('data-id="') == len(first) and all(f'data-id="{m.run_id}"' in page for m in first)
    rows = []
    for chunk in sorted((runs_dir / CHUNK_DIR).iterdir()):
        text = chunk.read_text()
        rows += json.loads("[" + text[len("shiolRuns(") :].rstrip().removesuffix(");") + "]")[1]
    assert sorted(r["id"] for r in rows) == sorted(m.run_id for m in manifests)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as CI does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND"]
        )
        yield chromium
        chromium.close()


@pytest.mark.slow
def test_a_browser_pages_to_an_older_run_and_filters_across_all_runs(runs, browser) -> None:
    runs_dir, manifests = runs
    page = browser.new_page()
    problems: list[str] = []
    page.on("request", lambda r: None if r.url.startswith("file:") else problems.append(r.url))
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.goto((runs_dir / "index.html").as_uri())
    shown = page.locator("#runs tbody tr:visible").count()
    assert 30 <= shown < RUNS and "older runs not loaded yet" in page.inner_text("#f-count")
    page.click("#older-load")
    page.wait_for_function("document.querySelectorAll('#runs-older tr').length > 0")
    assert page.locator("#runs-older tr").count() == 100
    assert page.inner_text("#f-count") == f"{RUNS} of {RUNS} runs shown"
    page.click("#older-next")
    page.click("#older-next")
    assert "(page 3 of" in page.inner_text("#older-page")
    link = page.locator("#runs-older tr").first.locator("a").first
    run_id = link.inner_text()
    link.click()
    page.wait_for_load_state("load")
    assert run_id in page.inner_text("h1") and page.url.endswith(f"{run_id}/index.html")
    page.go_back()
    page.wait_for_load_state("load")
    page.select_option("#f-job", "evaluation")  # loads the chunks, filters every run
    page.wait_for_function("document.querySelectorAll('#runs-older tr').length > 0")
    evaluations = [m for m in manifests if m.job == "evaluation"]
    assert page.inner_text("#f-count") == f"{len(evaluations)} of {RUNS} runs shown"
    jobs = page.eval_on_selector_all("#runs tr:visible[data-job]", "els => els.map(e => e.dataset.job)")
    assert set(jobs) == {"evaluation"}
    page.select_option("#f-job", "")
    page.select_option("#f-status", "failed")
    failed = [m for m in manifests if m.status == RunStatus.FAILED]
    assert page.inner_text("#f-count") == f"{len(failed)} of {RUNS} runs shown"
    assert page.locator("#runs tr:visible[data-id]").count() == len(failed)  # both pages fit: fewer than 100
    assert "<b>boom</b>" in page.inner_text("#runs-older") and page.locator("#runs-older b").count() == 0
    page.select_option("#f-status", "")
    page.fill("#f-from", "2026-06-10")
    page.fill("#f-to", "2026-06-19")
    within = [m for m in manifests if "2026-06-10" <= m.started_at.date().isoformat() <= "2026-06-19"]
    assert page.inner_text("#f-count") == f"{len(within)} of {RUNS} runs shown"
    assert problems == []


def test_a_write_of_the_pages_that_fails_midway_leaves_no_page_called_changed(tmp_path: Path, monkeypatch) -> None:
    from archive_support import KEY, Home

    from shiol_lib.errors import ArchiveError

    home = Home(tmp_path, key=KEY)
    for minutes in (0, 5):
        home.close_run(minutes)
    dashboard.write_index(home.runs, ledger_key=KEY)
    assert home.problems() == []
    home.close_run(10)  # a run closes; its pages' write then meets a full disk after two pages
    real, calls = dashboard.write_atomic, []

    def fails_at_the_third(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) > 2:
            raise ArchiveError(f"could not write {path}: No space left on device")
        real(path, data)

    monkeypatch.setattr(dashboard, "write_atomic", fails_at_the_third)
    with pytest.raises(ArchiveError, match="No space left"):
        dashboard.write_index(home.runs, ledger_key=KEY, incremental=True)
    monkeypatch.undo()
    # The two pages replaced are recorded: verify says only that the pages lag the ledger, and why.
    problems = home.problems()
    assert len(problems) == 1 and "their last rewrite failed" in problems[0], problems
    dashboard.write_index(home.runs, ledger_key=KEY, incremental=True)  # the next write mends it
    assert home.problems() == []
