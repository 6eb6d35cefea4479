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
    done = CliRunner().invoke(
        cli,
        ["research", "backtest", "--from", "2024-01-01", "--to", "2024-01-31", "--cluster", address, "--json"],
        prog_name="shiol",
    )
    assert done.exit_code == 2, done.output
    assert f"cannot reach the Dask scheduler at {address}" in done.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "var").exists()


def test_the_default_cluster_comes_from_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    monkeypatch.setenv("SHIOL_DASK_ADDRESS", "not-an-address")
    done = CliRunner().invoke(cli, ["research", "power", "--histories", "1"], prog_name="shiol")
    assert done.exit_code == 2 and "'not-an-address' is not 'none', 'local'" in done.output, done.output
    assert not (tmp_path / "runs").exists()


def test_a_span_without_enough_history_exits_2_naming_the_dates_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIOL_HOME", str(tmp_path))
    assert CliRunner().invoke(cli, ["update-data", "--offline"], prog_name="shiol").exit_code == 0
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "var" not in p.parts)
    for span, message in (
        (
            ("2015-10-07", "2015-12-01"),
            "no drawing from 2015-10-07 to 2015-12-01 has the 56 earlier drawings of the 2015-69/26 era",
        ),
        (("2030-01-01", "2030-02-01"), "no stored drawing from 2030-01-01 to 2030-02-01"),
        (("2015-01-01", "2016-01-01"), "crosses a game-matrix change"),
    ):
        done = CliRunner().invoke(
            cli, ["research", "backtest", "--from", span[0], "--to", span[1], "--json"], prog_name="shiol"
        )
        assert done.exit_code == 2, done.output
        assert message in done.output and "nothing was run" in done.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "var" not in p.parts) == before
    assert not (tmp_path / "runs" / "research_backtest").exists()
