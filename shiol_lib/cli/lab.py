"""``shiol lab``: gathers the port and token and starts JupyterLab (:mod:`shiol_lib.cli.lab_server`)."""

from __future__ import annotations

import sys

import click

from shiol_lib.settings import Settings


@click.command("lab")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: SHIOL_LAB_PORT, 8888).")
@click.option("--token", default=None, help="Access token (default: SHIOL_LAB_TOKEN, else a random one).")
@click.pass_obj
def lab_command(settings: Settings, port: int | None, token: str | None) -> None:
    """Start JupyterLab on 127.0.0.1 in the notebooks folder with the workbench's kernel and settings."""
    from shiol_lib.cli.lab_server import lab_server, run_lab  # jupyter_client: only for this command

    server = lab_server(settings, port=port, token=token)
    if not settings.snapshot_path.exists():
        click.echo(f"warning: no store snapshot at {settings.snapshot_path} yet; run 'shiol update-data'", err=True)
    click.echo(f"JupyterLab in {server.root}: {server.url}", err=True)
    sys.exit(run_lab(server))
