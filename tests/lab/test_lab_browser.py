"""The workbench in JupyterLab, driven by Playwright in Debian's Chromium against a real ``shiol lab``.

One server on 127.0.0.1 over a seeded home: the bundled history in the store (``shiol update-data
--offline``) and closed pipeline runs with their archived reports (``archive_support.Home``). The Lab
extension is this tree's build (``labextension/dist``, linked into the server's JUPYTER_DATA_DIR as
``scripts/setup.sh`` links it into the venv). Every request that is not to 127.0.0.1 is aborted and
fails the test. Screenshots of each panel land in /tmp/lab-shots/.

The walk: open Runs and see the seeded runs, open a report (a sandboxed iframe) and a diff; schedule an
exploratory notebook through "Schedule…" (a bad value and a bad cron shown beside their fields, then
Create), see the job in Jobs (paused, Run now is refused with the reason; resumed), run it now, watch it
appear in Runs and end ``success``, and read its executed notebook read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_support import Home
from lab_support import serving_lab
from service_support import free_port

from shiol_lib.cli.lab_server import lab_server
from shiol_lib.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "labextension" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "1.0-shw-draw-frequencies.ipynb"
JOB = "shw-draw-frequencies"
TOKEN = "browser-test-token"
SHOTS = Path("/tmp/lab-shots")
RUN_GUARD_MS = 420_000  # the job's run: a kernel, the notebook, its report (a hang guard, not a timing)
pytestmark = pytest.mark.slow


class Lab:
    def __init__(self, url: str, home: Path, runs: list[str], log: Path) -> None:
        self.url, self.home, self.runs, self.log = url, home, runs, log


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as CI does")
    if not (DIST / "package.json").is_file():
        pytest.fail(f"{DIST} is not built: run 'bash scripts/setup.sh' (it builds the Lab extension with Node.js 20)")
    base = tmp_path_factory.mktemp("lab")
    home, root = base / "home", base / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIOL_", "JUPYTER"))}
    env.update(SHIOL_HOME=str(home), SHIOL_NY_BASE_URL="http://127.0.0.1:9", SHIOL_HTTP_RETRIES="0")
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "shiol_lib.cli", "update-data", "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seeded = Home(home)
    runs = [seeded.close_run(minutes=n)[0] for n in range(3)]
    runs.append(seeded.close_run(minutes=10, status="failed")[0])
    (root / "exploratory").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "exploratory" / NOTEBOOK, root / "exploratory" / NOTEBOOK)
    jupyter = {f"JUPYTER_{d}_DIR": str(base / "jupyter" / d.lower()) for d in ("CONFIG", "DATA", "RUNTIME")}
    labextensions = base / "jupyter" / "data" / "labextensions"
    labextensions.mkdir(parents=True)
    (labextensions / "shiol-workbench-lab").symlink_to(DIST)
    server = lab_server(load_settings(env), port=free_port(), token=TOKEN)
    log_path = base / "lab.log"
    with serving_lab(server, root, {**server.env, **jupyter, "PYTHONPATH": str(REPO)}, log_path) as url:
        yield Lab(url, home, runs, log_path)


@pytest.fixture(scope="module")
def page(lab: Lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.problems = []

        def route(r):
            if r.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
                r.continue_()
            else:
                page.problems.append(f"left the machine: {r.request.url}")
                r.abort()

        page.context.route("**/*", route)
        page.on("pageerror", lambda err: page.problems.append(str(err)))
        page.goto(f"{lab.url}/lab?token={TOKEN}&reset")
        page.locator(".jp-SideBar.jp-mod-left").wait_for(timeout=90_000)
        yield page
        browser.close()


def _side(page, widget_id: str) -> None:
    """Open a left-sidebar panel by its widget's id."""
    tab = page.locator(f'.jp-SideBar.jp-mod-left li[data-id="{widget_id}"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()


def test_the_lab_leaves_out_the_news_prompt_of_this_lab_only(lab: Lab, page) -> None:
    config = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent)")
    assert config["disabledExtensions"] == ["@jupyterlab/apputils-extension:announcements"]
    _side(page, "shiol-runs")
    page.locator(".shiol-RunsPanel .shiol-Run").first.wait_for(timeout=30_000)
    assert page.get_by_text("Jupyter news").count() == 0  # the prompt Lab shows at a first start
    outside = subprocess.run(  # another Lab of the environment is left as it was
        [sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True, timeout=120
    )
    assert outside.returncode == 0 and "apputils-extension:announcements" not in outside.stdout + outside.stderr


def test_runs_panel_lists_the_runs_newest_first_and_opens_a_report(lab: Lab, page) -> None:
    for widget_id, title in (("shiol-runs", "Runs"), ("shiol-jobs", "Jobs")):
        assert page.locator(f'.jp-SideBar li[data-id="{widget_id}"]').get_attribute("title") == title
    _side(page, "shiol-runs")
    rows = page.locator(".shiol-RunsPanel .shiol-Run")
    rows.first.wait_for(timeout=30_000)
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert ids == sorted(lab.runs, reverse=True)  # run ids begin with their start: newest first
    failed = page.locator(f'.shiol-Run[data-run-id="{lab.runs[3]}"]')
    assert failed.locator(".shiol-Badge-failed").inner_text() == "failed"
    assert " ET" in failed.inner_text() and " UTC" in failed.inner_text()
    page.select_option(".shiol-RunsPanel select[name=status]", "failed")
    page.wait_for_function("document.querySelectorAll('.shiol-RunsPanel .shiol-Run').length === 1")
    page.select_option(".shiol-RunsPanel select[name=status]", "")
    page.wait_for_function("document.querySelectorAll('.shiol-RunsPanel .shiol-Run').length === 4")
    page.screenshot(path=str(SHOTS / "runs.png"))

    page.locator(f'.shiol-Run[data-run-id="{lab.runs[1]}"]').click()
    frame = page.locator("iframe.shiol-Report")
    frame.wait_for(timeout=30_000)
    assert frame.get_attribute("sandbox") == ""  # no scripts, no same-origin access
    assert "No evidence of an edge" in page.frame_locator("iframe.shiol-Report").locator("body").inner_text()
    page.screenshot(path=str(SHOTS / "report.png"))

    page.locator(".shiol-RunView:visible .shiol-Diff").click()
    table = page.locator(".shiol-DiffView:visible")
    table.locator(":is(.shiol-Empty, .shiol-DiffTable)").wait_for(timeout=30_000)
    assert lab.runs[0] in table.inner_text() and lab.runs[1] in table.inner_text()
    page.screenshot(path=str(SHOTS / "diff.png"))
    assert page.problems == []


def test_schedule_a_notebook_run_it_from_jobs_and_watch_it_succeed_in_runs(lab: Lab, page) -> None:
    page.goto(f"{lab.url}/lab/tree/exploratory/{NOTEBOOK}?token={TOKEN}")
    _side(page, "filebrowser")
    page.locator(f'.jp-DirListing-item[data-file-type="notebook"][title*="{NOTEBOOK}"]').click(button="right")
    page.locator('.lm-Menu-item:has-text("Schedule…")').click()  # the file browser's context menu
    dialog = page.locator(".shiol-ScheduleDialog")
    dialog.locator("input[name=param-recent]").wait_for(timeout=30_000)
    assert dialog.locator("input[name=name]").input_value() == JOB
    dialog.locator("button:has-text('Cancel')").click()
    dialog.wait_for(state="detached", timeout=30_000)

    page.locator(".shiol-ScheduleButton").click()  # the notebook's toolbar
    recent = dialog.locator("input[name=param-recent]")
    recent.wait_for(timeout=30_000)
    assert recent.input_value() == "50"  # the parameters cell's default
    assert dialog.locator("input[name=param-era_start]").input_value() == "2015-10-07"
    assert dialog.locator("input[name=name]").input_value() == JOB
    recent.fill("many")
    dialog.locator("input[name=cron]").fill("0 7 * * 9")
    dialog.locator("input[name=secrets]").fill("1BAD")
    secrets = dialog.locator('.shiol-Problem[data-field="secrets"]:has-text("not an environment variable name")')
    secrets.wait_for(timeout=30_000)  # shown once a check saw every value typed above
    assert "is invalid" in dialog.locator('.shiol-Problem[data-field="schedule.cron"]').inner_text()
    assert dialog.locator('.shiol-Problem[data-field="parameters.recent"]').inner_text() == "many is not a whole number"
    assert dialog.locator("button:has-text('Create')").is_disabled()
    page.screenshot(path=str(SHOTS / "schedule-problems.png"))
    recent.fill("20")
    dialog.locator("input[name=secrets]").fill("")
    dialog.locator("input[value=manual]").check()
    page.wait_for_function("!document.querySelector('.shiol-ScheduleDialog .shiol-Problem.shiol-Error')")
    page.screenshot(path=str(SHOTS / "schedule.png"))
    dialog.locator("button:has-text('Create')").click()
    dialog.wait_for(state="detached", timeout=30_000)
    jobs_toml = (lab.home / "jobs.toml").read_text()
    assert f'name = "{JOB}"' in jobs_toml and "recent = 20" in jobs_toml and "era_start" not in jobs_toml

    card = page.locator(f'.shiol-Job[data-job="{JOB}"]')  # Create shows the Jobs panel
    card.wait_for(timeout=30_000)
    assert "manual" in card.locator(".shiol-Schedule").inner_text()
    assert "never run" in card.inner_text()
    card.locator(".shiol-Pause").click()
    card.locator(".shiol-Tag-paused").wait_for(timeout=30_000)
    card.locator(".shiol-RunNow").click()  # refused while paused: the server's reason shows on the card
    refusal = card.locator(".shiol-JobError")
    refusal.wait_for(timeout=30_000)
    assert "Run now refused" in refusal.inner_text() and "paused" in refusal.inner_text()
    page.screenshot(path=str(SHOTS / "jobs-refused.png"))
    card.locator(".shiol-Resume").click()
    card.locator(".shiol-Pause").wait_for(timeout=30_000)
    page.screenshot(path=str(SHOTS / "jobs.png"))
    card.locator(".shiol-RunNow").click()

    _side(page, "shiol-runs")
    row = page.locator(f'.shiol-RunsPanel .shiol-Run:has(.shiol-RunJob:text-is("{JOB}"))')
    row.first.wait_for(timeout=60_000)
    page.wait_for_function(
        f"""() => {{
            const row = [...document.querySelectorAll('.shiol-RunsPanel .shiol-Run')]
                .find(r => r.querySelector('.shiol-RunJob').textContent === {JOB!r});
            return row && row.dataset.status !== 'running';
        }}""",
        timeout=RUN_GUARD_MS,
    )
    assert row.first.get_attribute("data-status") == "success", row.first.inner_text() + lab.log.read_text()[-3000:]
    page.screenshot(path=str(SHOTS / "runs-after-job.png"))

    row.first.click()
    view = page.locator(".shiol-RunView:visible")
    view.locator(".shiol-OpenNotebook").first.click()
    viewer = page.locator(".shiol-NotebookViewer:visible")
    viewer.locator(".shiol-Cell-code").first.wait_for(timeout=30_000)
    assert "Read-only" in viewer.locator(".shiol-Banner").inner_text()
    assert viewer.locator(".shiol-Source pre").first.inner_text().startswith("snapshot_path")
    assert viewer.locator("textarea, [contenteditable=true]").count() == 0
    page.screenshot(path=str(SHOTS / "notebook.png"))
    assert page.problems == []
