"""``shiol research``: an unreachable cluster is a usage error (exit 2) and nothing is recorded."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from shiol_lib.cli.main import cli


def _closed_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_unreachable_cluster_exits_2_naming_it_and_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    address = _closed_address()
    done = CliRunner().invoke(cli, ["research", "backtest", "--from", "2024-01-01", "--to", "2024-01-31",
                                    "--cluster", address, "--json"], prog_name="shiol")
    assert done.exit_code == 2, done.output
    assert f"cannot reach the Dask scheduler at {address}" in done.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "var").exists()


def test_the_default_cluster_comes_from_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    monkeypatch.setenv("SHIOL_DASK_ADDRESS", "not-an-address")
    done = CliRunner().invoke(cli, ["research", "power", "--histories", "1"], prog_name="shiol")
    assert done.exit_code == 2 and "'not-an-address' is not 'none', 'local'" in done.output, done.output
    assert not (tmp_path / "runs").exists()
