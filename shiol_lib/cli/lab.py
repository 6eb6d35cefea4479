"""``shiol lab``: gathers the port and token and starts JupyterLab (:mod:`shiol_lib.cli.lab_server`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shiol_lib.settings import Settings

LABEXTENSION = "shiol-workbench-lab"  # the frontend (labextension/), found by JupyterLab in its data paths


@click.command("lab")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: SHIOL_LAB_PORT, 8888).")
@click.option("--token", default=None, help="Access token (default: SHIOL_LAB_TOKEN, else a random one).")
@click.pass_obj
def lab_command(settings: Settings, port: int | None, token: str | None) -> None:
    """Start JupyterLab on 127.0.0.1 in the notebooks folder with the workbench's kernel and settings."""
    from shiol_lib.cli.lab_server import lab_server, run_lab  # jupyter_client: only for this command

    server = lab_server(settings, port=port, token=token)
    if not _labextension_installed():
        click.echo(
            f"warning: the Lab extension {LABEXTENSION} is not installed (no Runs or Jobs panel); "
            "run 'bash scripts/setup.sh' (it builds it with Node.js 20) or install the workbench's wheel",
            err=True,
        )
    if not settings.snapshot_path.exists():
        click.echo(f"warning: no store snapshot at {settings.snapshot_path} yet; run 'shiol update-data'", err=True)
    click.echo(f"JupyterLab in {server.root}: {server.url}", err=True)
    sys.exit(run_lab(server))


def _labextension_installed() -> bool:
    """Whether JupyterLab will find the workbench's prebuilt Lab extension in one of its data folders."""
    from jupyter_core.paths import jupyter_path

    return any((Path(folder) / LABEXTENSION / "package.json").is_file() for folder in jupyter_path("labextensions"))
