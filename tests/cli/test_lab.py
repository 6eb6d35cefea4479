"""``shiol lab`` for real: JupyterLab on a free loopback port lists the notebooks through its REST API and
runs an exploration notebook in the workbench's kernel while a pipeline writes the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from lab_support import TOKEN, free_port, get

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_lab_lists_notebooks_and_runs_an_exploration_notebook_during_a_pipeline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env.update(
        SHIOL_HOME=str(tmp_path),
        SHIOL_NY_BASE_URL="http://127.0.0.1:9",
        SHIOL_HTTP_RETRIES="0",
        SHIOL_NOTEBOOKS_DIR=str(REPO / "notebooks"),
        SHIOL_LAB_TOKEN=TOKEN,
    )
    cli = [sys.executable, "-m", "shiol_lib.cli"]
    seeded = subprocess.run([*cli, "update-data", "--offline"], env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    port = free_port()
    lab = subprocess.Popen(
        [*cli, "lab", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    pipeline = None
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                listing = get(f"{base}/api/contents/exploratory")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer")
        names = {item["name"] for item in listing["content"]}
        assert {"1.0-shw-draw-frequencies.ipynb", "1.1-shw-exact-baseline.ipynb"} <= names
        assert "python3" in get(f"{base}/api/kernelspecs")["kernelspecs"]
        with pytest.raises(urllib.error.HTTPError):  # no token, no access
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)
        pipeline = subprocess.Popen(
            [*cli, "run", "pipeline", "--offline"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        nb = _run_in_lab_kernel(REPO / "notebooks" / "exploratory" / "1.0-shw-draw-frequencies.ipynb", env)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert errors == []
        assert pipeline.wait(timeout=900) == 0, "the pipeline failed while the notebook read the snapshot"
    finally:
        if pipeline and pipeline.poll() is None:
            pipeline.kill()
        lab.terminate()
        lab.wait(timeout=30)


def _run_in_lab_kernel(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Execute a notebook with nbclient in the kernel spec the lab server offers, with the lab's environment."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(path.parent)}})
    return client.execute(env=env)
