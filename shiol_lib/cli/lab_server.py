"""``shiol lab``: JupyterLab on the loopback interface, in the notebooks folder, with the workbench's settings.

The server's environment (and so every kernel's) is this process's with its ``SHIOL_*`` variables
replaced by exactly the given settings, as for the pipeline's kernels; exploration notebooks read the
published snapshot of the store (``shiol_lib.store.read_snapshot_draws``), never the live file, so an
open notebook never blocks the scheduler's writer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from shiol_lib.execution.kernels import KERNEL_NAME
from shiol_lib.settings import Settings, child_environment

HOST = "127.0.0.1"
STOP_GRACE_S = 30.0  # after SIGTERM the server has this long to stop its kernels, then all are killed
POLL_S = 1.0  # how often the server's kernels are noted while it runs
# A Jupyter config folder of this Lab's own: its labconfig/page_config.json disables the news announcements.
LAB_CONFIG = Path(__file__).resolve().parents[1] / "lab" / "jupyter_config"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class LabServer:
    """How to start JupyterLab: the command, its environment, and where it answers."""

    command: list[str]
    env: dict[str, str]
    root: Path
    port: int
    token: str

    @property
    def url(self) -> str:
        """The address to open (the token in the query, as Jupyter prints it)."""
        return f"http://{HOST}:{self.port}/lab?token={self.token}"


def lab_server(settings: Settings, *, port: int | None = None, token: str | None = None) -> LabServer:
    """The JupyterLab server for ``settings`` (``port``/``token`` override SHIOL_LAB_PORT/SHIOL_LAB_TOKEN).

    Without a token from either, a random one is made.
    """
    port = settings.lab_port if port is None else port
    token = token or settings.lab_token or secrets.token_urlsafe(24)
    root = Path(settings.notebooks_dir)
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
        "--ServerApp.jpserver_extensions=shiol_lib.lab=True",  # the Runs and Jobs panels' API, installed or not
        "--LabApp.news_url=None",  # no news feed fetched from the internet (LAB_CONFIG removes the prompt)
    ]
    if os.geteuid() == 0:  # a container or CI running as root: JupyterLab refuses root without this
        command.append("--allow-root")
    env = {**child_environment(settings), "JUPYTER_TOKEN": token}  # the token never shows in argv
    # This Lab only (not every Lab of the environment) leaves out the "Jupyter news" prompt and update check.
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(LAB_CONFIG), env.get("JUPYTER_CONFIG_PATH")]))
    return LabServer(command, env, root, port, token)


def run_lab(server: LabServer, *, grace_s: float = STOP_GRACE_S) -> int:
    """Run the server in the foreground until it stops; its exit code.

    SIGTERM, SIGINT (Ctrl-C) and SIGHUP to this process stop the server: it gets SIGTERM (it then shuts
    its kernels down), and whatever of it (or its kernels) is alive ``grace_s`` later is killed. The
    server runs in a session of its own, so a terminal's Ctrl-C reaches it only this way (Jupyter's own
    Ctrl-C handler would ask for a confirmation). Kernels the server started are remembered while it
    runs and killed if they outlive it.
    """
    proc = subprocess.Popen(server.command, env=server.env, cwd=server.root, start_new_session=True)
    stop_asked: list[float] = []

    def stop(signum: int, _frame: object) -> None:
        if not stop_asked:
            stop_asked.append(time.monotonic())
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    family: dict[int, psutil.Process] = {}
    try:
        while True:
            _remember_children(proc.pid, family)
            try:
                return proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                if stop_asked and time.monotonic() - stop_asked[0] > grace_s:
                    _kill(list(family.values()) + _as_list(proc.pid))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            _kill(_as_list(proc.pid))
            proc.wait()
        _kill([p for p in family.values() if p.is_running()])


def _remember_children(pid: int, family: dict[int, psutil.Process]) -> None:
    """Add the live descendants of ``pid`` (the server's kernels) to ``family``."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            family.setdefault(child.pid, child)


def _as_list(pid: int) -> list[psutil.Process]:
    try:
        return [psutil.Process(pid)]
    except psutil.Error:
        return []


def _kill(processes: list[psutil.Process]) -> None:
    """SIGKILL each process that is still the one remembered (``is_running`` checks its start time)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running():
                process.kill()
    psutil.wait_procs(processes, timeout=10)
