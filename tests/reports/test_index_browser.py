"""``runs/index.html`` in a real headless Chromium: it lists a real run and links its step's HTML, which
opens from disk and shows the executed notebook.

Chromium must be Debian's ``/usr/bin/chromium`` (CI installs it); the test fails, never skips, without it.
Host names resolve nowhere (``--host-resolver-rules``), so the CDN scripts an nbconvert page names are not
fetched: the test never reaches the internet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
from matplotlib import image

CHROMIUM = Path("/usr/bin/chromium")
SHIOL = str(Path(sys.executable).parent / "shiol")
SUCCESS_GREEN = np.array([0x1A, 0x7F, 0x37])  # .status-success in templates/dashboard.css
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


def shiol(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": "http://127.0.0.1:9", "SHIOL_HTTP_RETRIES": "0"}
    env.pop("SHIOL_MUSL_API_KEY", None)
    return subprocess.run([SHIOL, *args], env=env, capture_output=True, text=True, timeout=timeout)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile; fail (never skip) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as CI does")
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


class _Rows(HTMLParser):
    """The rows of a rendered page's tables: each row's text and the ``href`` of each of its links."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append({"text": [], "links": []})
        elif tag == "a" and self.rows:
            self.rows[-1]["links"].append(dict(attrs).get("href") or "")

    def handle_data(self, data: str) -> None:
        if self.rows and data.strip():
            self.rows[-1]["text"].append(data.strip())


def _local_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(url2pathname(parsed.path))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A temp SHIOL_HOME holding one real, offline data_update run; returns its runs folder and run id."""
    if not CHROMIUM.exists():  # say so before spending the run
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as CI does")
    home = tmp_path_factory.mktemp("home")
    done = shiol(home, "run", "data_update", "--offline", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return home / "runs", json.loads(done.stdout)["run_id"]


@pytest.fixture(scope="module")
def index_row(archive: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The index's row of the run, as Chromium rendered it."""
    runs, run_id = archive
    dom = chromium(tmp_path_factory.mktemp("profile"), "--dump-dom", (runs / "index.html").as_uri()).stdout
    page = _Rows()
    page.feed(dom)
    rows = [row for row in page.rows if run_id in row["text"]]
    assert len(rows) == 1, dom[-3000:]
    return rows[0]


@pytest.mark.slow
def test_index_lists_the_run_with_its_job_and_status(index_row):
    text = index_row["text"]
    assert "data_update" in text and "manual" in text
    assert text.count("success") == 2  # the run and its one step
    assert any(part.startswith("update_data") for part in text)


@pytest.mark.slow
def test_index_links_the_step_html_and_the_link_resolves(archive, index_row):
    runs, run_id = archive
    index_url = (runs / "index.html").as_uri()
    steps = [href for href in index_row["links"] if href.endswith("10_update_data.html")]
    assert len(steps) == 1, index_row["links"]
    assert not urlparse(steps[0]).scheme, "index links must be relative, to open from any copy"
    target = _local_path(urljoin(index_url, steps[0]))
    assert target.is_file() and target.resolve().is_relative_to(runs.resolve())
    assert target.parent.name == run_id
    run_pages = [href for href in index_row["links"] if href.endswith(f"{run_id}/index.html")]
    assert run_pages and _local_path(urljoin(index_url, run_pages[0])).is_file()


@pytest.mark.slow
def test_index_screenshot_shows_the_page(archive, tmp_path):
    runs, _ = archive
    shot = tmp_path / "index.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,800", (runs / "index.html").as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000
    pixels = np.rint(image.imread(shot)[..., :3] * 255).astype(int)
    assert pixels.shape == (800, 1280, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "a blank or one-colour page"
    green = (np.abs(pixels - SUCCESS_GREEN).sum(axis=2) <= 30).sum()
    assert green > 50, "the success status is not rendered in its green"


@pytest.mark.slow
def test_linked_step_html_shows_the_executed_notebook(archive, index_row, tmp_path):
    runs, _ = archive
    href = next(h for h in index_row["links"] if h.endswith("10_update_data.html"))
    dom = chromium(tmp_path / "profile", "--dump-dom", urljoin((runs / "index.html").as_uri(), href)).stdout
    assert "Update data and detect new drawings" in dom
    assert "What the store holds now" in dom and 'id="findings"' in dom
    assert "seeded the empty store with 1647 draws from the bundled snapshot" in dom  # an executed output
    assert "data:image/png;base64," in dom  # the per-year plot
