"""The dashboard and every step report of a real pipeline run, opened from disk in headless Chromium.

Playwright drives Debian's ``/usr/bin/chromium`` (``executable_path``; never ``playwright install``). Every
request is recorded: anything that is not ``file:`` (or an inline ``data:`` image) fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
from matplotlib import image
from notebook_support import short_notebooks

from shiol_lib.archive import folders as archive
from shiol_lib.domain.runs import RunStatus
from shiol_lib.reports import dashboard as run_index
from shiol_lib.store.monitoring import MissedSlot

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<script>window.hacked = 1</script>"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real offline pipeline run, plus a failed run whose error holds a script tag and a missed drawing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as CI does")
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(SHIOL_HOME=str(home), SHIOL_NY_BASE_URL="http://127.0.0.1:9", SHIOL_HTTP_RETRIES="0")
    env["SHIOL_NOTEBOOKS_DIR"] = str(short_notebooks(home / "notebooks"))  # the pages, not the model
    done = subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", "run", "pipeline", "--offline", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs_dir = home / "runs"
    source = archive.find_run_dir(runs_dir, json.loads(done.stdout)["run_id"])
    failed = archive.read_manifest(source)
    failed.started_at -= timedelta(days=1)  # inside the timeline's window, which ends at the newest run
    failed.run_id, failed.job, failed.status = archive.new_run_id(failed.started_at), "data_update", RunStatus.FAILED
    failed.steps, failed.error, failed.attempt, failed.metrics = failed.steps[:1], f"step update_data: {HOSTILE}", 3, {}
    failed.steps[0].html = failed.steps[0].output = failed.steps[0].log = None
    directory = archive.run_dir(runs_dir, failed.job, failed.run_id, failed.started_at)
    directory.mkdir(parents=True)
    archive.write_manifest(directory, failed)
    slot = failed.started_at - timedelta(days=1)
    run_index.write_index(runs_dir, missed=[MissedSlot("pipeline", slot, slot.date(), "draw", slot)])
    return runs_dir


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND"]
        )
        yield chromium
        chromium.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.problems = []
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else page.problems.append(r.url))
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda err: page.problems.append(str(err)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page


def _non_blank(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    pixels = np.rint(image.imread(path)[..., :3] * 255).astype(int)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, f"{path.name}: a blank page"


def test_dashboard_filters_links_and_escaping(runs: Path, browser, tmp_path: Path) -> None:
    page = _open(browser, (runs / "index.html").as_uri())
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 2
    page.select_option("#f-job", "data_update")
    assert page.locator("#runs tbody tr:visible").count() == 1
    page.select_option("#f-job", "")
    page.select_option("#f-status", "success")
    assert page.locator("#runs tbody tr:visible").count() == 1
    page.select_option("#f-status", "")
    page.fill("#f-to", "2000-01-01")
    assert page.locator("#runs tbody tr:visible").count() == 0 and page.locator("a.dot:visible").count() == 0
    page.fill("#f-to", "")
    assert page.locator("#runs tbody tr:visible").count() == 2
    assert page.locator("a.dot.status-missed").count() == 1 and "missed draw" in page.inner_text("#missed")
    assert HOSTILE in page.inner_text("#runs") and page.evaluate("window.hacked") is None
    assert "No evidence of an edge" in page.inner_text("#headline")
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    for href in hrefs:
        parsed = urlparse(href)
        assert parsed.scheme == "file", href
        assert Path(url2pathname(parsed.path)).exists(), href
    _non_blank(page, tmp_path / "index.png")
    assert page.problems == []


def test_run_page_lists_steps_parameters_hashes(runs: Path, browser) -> None:
    run_pages = sorted(runs.glob("pipeline/*/*/index.html"))
    assert len(run_pages) == 1
    page = _open(browser, run_pages[0].as_uri())
    assert page.locator("#steps tbody tr").count() == 6 and "input draws" in page.inner_text("#hashes")
    for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
        assert Path(url2pathname(urlparse(href).path)).exists(), href
    assert page.problems == []


def test_every_step_report_reads_well_offline(runs: Path, browser, tmp_path: Path) -> None:
    reports = sorted(runs.glob("pipeline/*/*/[0-9]*.html"))
    assert len(reports) == 6
    for report in reports:
        page = _open(browser, report.as_uri())
        assert page.locator("#findings").count() == 1, report.name
        assert page.locator(".input, .jp-InputArea, .input_area").count() == 0, report.name
        assert "/tmp/" not in page.inner_text("#parameters")
        images = page.locator("img")
        assert images.count() >= 1, report.name
        assert all(images.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(images.count()))
        assert page.locator("script").count() == 0
        _non_blank(page, tmp_path / f"{report.stem}.png")
        assert page.problems == [], (report.name, page.problems)
        page.close()
