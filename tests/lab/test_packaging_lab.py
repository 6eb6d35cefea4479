"""The wheel carries both Lab extensions, and a fresh environment without Node.js lists them enabled.

The wheel is built from a copy of what pyproject.toml ships (the prebuilt ``labextension/dist`` included,
never its sources or node_modules), installed with ``--no-deps`` into a new venv whose dependencies come
from this test's own environment (a ``.pth`` line: no download), and ``jupyter labextension list`` and
``jupyter server extension list`` (their modules: the venv has no jupyter scripts) run from it with a PATH
holding no ``node``; then JupyterLab started from it serves the extension and the workbench's API.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from pathlib import Path

import pytest
import requests
from service_support import free_port

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "labextension" / "dist"
LABEXT = "share/jupyter/labextensions/shiol-workbench-lab"
HANG_GUARD_S = 120.0
pytestmark = pytest.mark.slow


def _build_wheel(root: Path) -> Path:
    if not (DIST / "package.json").is_file():
        pytest.fail(f"{DIST} is not built: run 'bash scripts/setup.sh' (it builds the Lab extension with Node.js 20)")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")
    for name in ("shiol_lib", "notebooks", "etc", "labextension/dist"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "wheel"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (root / "wheel").glob("shiol_workbench-*.whl")
    return wheel


def test_a_wheel_installed_without_node_lists_and_serves_the_lab_and_server_extensions(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    data = "shiol_workbench-0.1.0.data/data"
    names = set(zipfile.ZipFile(wheel).namelist())
    built = {f"{data}/{LABEXT}/{p.relative_to(DIST)}" for p in DIST.rglob("*") if p.is_file()}
    assert built and built <= names, sorted(built - names)
    assert f"{data}/etc/jupyter/jupyter_server_config.d/shiol_lib.json" in names
    assert "shiol_lib/lab/jupyter_config/labconfig/page_config.json" in names  # `shiol lab` leaves out the news prompt
    assert not any("node_modules" in n or n.endswith(".ts") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    paths = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(subprocess.check_output([python, "-c", paths], text=True).strip())
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # a checkout on it reads as installed
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (env_dir / LABEXT / "package.json").is_file()
    # the dependencies (after the install: pip would take this environment's editable workbench for the wheel)
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    path = str(env_dir / "bin")
    assert shutil.which("node", path=path) is None and shutil.which("npm", path=path) is None
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIOL_", "JUPYTER")) and k != "PYTHONPATH"}
    env.update(
        PATH=path,
        HOME=str(home),
        SHIOL_HOME=str(home / "shiol"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )

    def jupyter(module: str, *args: str) -> str:  # the module `jupyter X` runs (its scripts are not in this venv)
        done = subprocess.run(
            [str(python), "-m", module, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout + done.stderr

    where = subprocess.run(
        [str(python), "-c", "import shiol_lib; print(shiol_lib.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout + where.stderr  # the wheel's, no checkout

    labextensions = jupyter("jupyterlab.labextensions", "list")
    line = next((ln for ln in labextensions.splitlines() if "shiol-workbench-lab" in ln), "")
    assert "enabled" in line and "OK" in line, labextensions
    assert str(env_dir / "share" / "jupyter" / "labextensions") in labextensions
    server = jupyter("jupyter_server.extension.serverextension", "list")
    line = next((ln for ln in server.splitlines() if "shiol_lib.lab" in ln), "")
    assert "enabled" in line, server
    assert "shiol_lib.lab" in server and "OK" in server.split("shiol_lib.lab", 1)[1][:200], server

    # JupyterLab itself, started from that venv (not through `shiol lab`, which also passes the server
    # extension on its command line): the page lists the prebuilt extension, its files are served, and
    # the API answers, enabled by the wheel's config file alone.
    port, token = free_port(), "wheel-test-token"
    command = [str(python), "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    command += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={tmp_path}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "lab.log"
    with log.open("w") as out:
        lab = subprocess.Popen(
            command, env={**env, "JUPYTER_TOKEN": token}, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            assert lab.poll() is None, log.read_text()
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{base}/api/status", params={"token": token}, timeout=5).ok:
                    break
            assert time.monotonic() < deadline, "JupyterLab did not answer: " + log.read_text()
            time.sleep(0.3)
        page = requests.get(f"{base}/lab", params={"token": token}, timeout=30).text
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
        (ours,) = [e for e in config["federated_extensions"] if e["name"] == "shiol-workbench-lab"]
        served = requests.get(f"{base}/lab/extensions/shiol-workbench-lab/{ours['load']}", timeout=30)
        assert served.status_code == 200 and "shiol-workbench-lab" in served.text
        jobs = requests.get(f"{base}/shiol/api/v1/jobs", headers={"Authorization": f"token {token}"}, timeout=30)
        assert jobs.status_code == 200, jobs.text
        assert "pipeline" in {job["name"] for job in jobs.json()["jobs"]}
    finally:
        lab.send_signal(signal.SIGTERM)
        try:
            lab.wait(timeout=60)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
