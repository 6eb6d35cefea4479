"""The distribution is complete: the wheel holds every module, the notebooks and the scheduler app, and runs
without a checkout.

The slow test builds the wheel from a copy of only what pyproject.toml ships from (pyproject.toml,
README.md, shiol_lib/, notebooks/), installs it with ``pip install --no-deps --target DIR`` and runs the
``shiol`` script that pip wrote there, with ``PYTHONPATH=DIR`` only and its working folder outside the
checkout. The interpreter is this test's own (its environment holds the dependencies), so the test needs
no dependency download and proves that the wheel alone carries the workbench: no checkout on the path,
no notebooks/ or schedules.py beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests

from shiol_lib.jobs.catalog import JOBS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "shiol_lib"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_of_the_tree_is_listed_for_the_wheel():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_every_pipeline_notebook_is_package_data_and_jupyterlab_is_an_extra():
    config = _pyproject()
    assert config["tool"]["setuptools"]["package-dir"]["shiol_lib.notebooks"] == "notebooks"
    notebooks = {s.notebook for job in JOBS.values() for s in job.steps}
    assert notebooks and all((REPO / "notebooks" / name).is_file() for name in notebooks)
    assert not any(d.startswith("jupyterlab") for d in config["project"]["dependencies"])
    assert any(d.startswith("jupyterlab") for d in config["project"]["optional-dependencies"]["lab"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the shipped sources and installed into a folder of its own."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")
    for name in ("shiol_lib", "notebooks", "etc"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (root / "dist").glob("shiol_workbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    assert "shiol_lib/scheduling/app.py" in names and "shiol_lib/data/powerball_draws_ny.csv" in names
    notebooks = {f"shiol_lib/notebooks/{p.name}" for p in (REPO / "notebooks").glob("*.ipynb")}
    assert notebooks <= names, sorted(notebooks - names)
    # the Lab's server extension is enabled wherever the wheel is installed
    assert "shiol_workbench-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/shiol_lib.json" in names
    target = root / "target"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def _env(target: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_") and k != "PYTHONPATH"}
    return {
        **env,
        "PYTHONPATH": str(target),
        "SHIOL_HOME": str(home),
        "SHIOL_NY_BASE_URL": "http://127.0.0.1:9",
        **extra,
    }


@pytest.mark.slow
def test_the_installed_wheel_updates_runs_the_pipeline_and_serves_the_scheduler_without_a_checkout(installed, tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shiol = str(installed / "bin" / "shiol")
    env = _env(installed, home)

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([shiol, *args], env=env, cwd=elsewhere, capture_output=True, text=True, timeout=timeout)

    where = subprocess.run(
        [sys.executable, "-c", "import shiol_lib.settings as s; print(s.__file__);print(s.PACKAGE_NOTEBOOKS)"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    module, notebooks = where.stdout.split()
    assert Path(module).is_relative_to(installed) and Path(notebooks) == installed / "shiol_lib" / "notebooks"

    updated = run("update-data", "--offline")
    assert updated.returncode == 0, updated.stderr
    assert f"created the store at {home.resolve() / 'var' / 'shiol.duckdb'}" in updated.stderr
    job = run("run", "pipeline", "--offline", "--json")  # the main job, from the wheel alone
    assert job.returncode == 0, job.stderr[-3000:]
    outcome = json.loads(job.stdout)
    assert outcome["status"] == "success"
    assert [s["status"] for s in outcome["manifest"]["steps"]] == ["success"] * 6
    assert outcome["manifest"]["target_draw_date"] == "2024-07-01"
    step = outcome["manifest"]["steps"][0]
    assert str(installed / "shiol_lib" / "notebooks" / "10_update_data.ipynb") in step["command"]
    assert (Path(outcome["directory"]) / "10_update_data.html").is_file()

    port = _free_port()
    log = tmp_path / "scheduler.log"
    never = "0 3 1 1 *"  # 03:00 on January 1st: no job gets in the way
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [shiol, "schedule", "run"],
            cwd=elsewhere,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **env,
                "SHIOL_API_PORT": str(port),
                "SHIOL_PIPELINE_CRON": never,
                "SHIOL_UPDATE_CRON": never,
                "SHIOL_EVALUATION_CRON": never,
            },
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "scheduler up" in log.read_text()
    assert not list(elsewhere.iterdir())  # nothing written to the working folder
