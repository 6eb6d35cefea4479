"""``shiol lab``: JupyterLab on the loopback interface, in the notebooks folder, with the workbench's settings.

The server's environment (and so every kernel's) is this process's with its ``SHIOL_*`` variables
replaced by exactly the given settings, as for the pipeline's kernels; exploration notebooks read the
published snapshot of the store (``shiol_lib.store.read_snapshot_draws``), never the live file, so an
open notebook never blocks the scheduler's writer.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shiol_lib.execution.kernels import KERNEL_NAME
from shiol_lib.settings import Settings, child_environment

HOST = "127.0.0.1"


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
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
    ]
    if os.geteuid() == 0:  # a container or CI running as root: JupyterLab refuses root without this
        command.append("--allow-root")
    env = {**child_environment(settings), "JUPYTER_TOKEN": token}  # the token never shows in argv
    return LabServer(command, env, root, port, token)


def run_lab(server: LabServer) -> int:
    """Run the server in the foreground until it stops (Ctrl-C stops it); its exit code."""
    proc = subprocess.Popen(server.command, env=server.env, cwd=server.root)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
