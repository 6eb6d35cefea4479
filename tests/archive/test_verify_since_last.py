"""``shiol runs verify --since-last`` and pruning at scale: a tampering since the last verification is found.

``--since-last`` re-hashes only the files whose size, inode, mtime or ctime changed since the last
verification that found the archive intact; these tests change an old run's bytes in every way a user
can (same size, mtime put back, a file renamed over it) and expect the same finding as a full verify.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from archive_support import KEY, Home
from click.testing import CliRunner

from shiol_lib.archive import ledger
from shiol_lib.archive.folders import read_manifest
from shiol_lib.archive.pages import CHUNK_DIR
from shiol_lib.archive.retention import prune_runs
from shiol_lib.archive.verify_state import STATE
from shiol_lib.cli.main import cli
from shiol_lib.reports import dashboard

RUNS = 150  # a few hundred days of runs, one a day
DAY = 24 * 60


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed archive of :data:`RUNS` runs, one a day up to a week ago, with its pages; kept as a template."""
    home = Home(tmp_path_factory.mktemp("scale") / "home", key=KEY)
    back = (datetime(2026, 11, 28, 4, 29, tzinfo=UTC) - datetime.now(UTC)).total_seconds() // 60  # T0 -> now
    for i in range(RUNS):
        home.close_run(int(-back - (RUNS - i + 7) * DAY), outputs=i % 10 == 0)
    dashboard.write_index(home.runs, ledger_key=KEY)
    return home.root


@pytest.fixture
def home(built: Path, tmp_path: Path) -> Home:
    shutil.copytree(built, tmp_path / "home", symlinks=True)
    return Home(tmp_path / "home", key=KEY)


def _verify(home: Home, *args: str) -> tuple[int, dict]:
    env = {"SHIOL_HOME": str(home.root), "SHIOL_LEDGER_KEY": KEY}
    result = CliRunner().invoke(cli, ["runs", "verify", "--json", *args], env=env)
    return result.exit_code, json.loads(result.stdout)


def _problems(report: dict) -> str:
    return "\n".join(p["problem"] for p in report["problems"])


def test_since_last_hashes_nothing_unchanged_and_a_full_verify_everything(home: Home) -> None:
    code, full = _verify(home, "--since-last")  # no state yet: a full verification, which records one
    assert code == 0 and not full["since_last"] and full["files_hashed"] > 3 * RUNS
    assert (home.root / "var" / STATE).is_file()
    code, since = _verify(home, "--since-last")
    assert code == 0 and since["since_last"] and since["files_hashed"] == 0
    assert since["files_unchanged"] == full["files_hashed"] and since["files"] == full["files"]
    code, again = _verify(home)
    assert code == 0 and again["files_hashed"] == full["files_hashed"]


@pytest.mark.parametrize("how", ["same size", "mtime put back", "renamed over", "chunk edited"])
def test_a_tampering_since_the_last_verify_is_found(home: Home, how: str) -> None:
    assert _verify(home)[0] == 0  # records the state
    oldest = sorted(home.runs.glob("pipeline/*/*/60_analyze_performance.html"))[0]
    before = oldest.stat()
    if how == "chunk edited":
        chunk = sorted((home.runs / CHUNK_DIR).iterdir())[0]
        chunk.write_text(chunk.read_text().replace("success", "failed", 1))
        expected = f"page {CHUNK_DIR}/{chunk.name} was changed after it was written"
    else:
        forged = oldest.read_bytes().replace(b"0.19", b"0.01")
        if how == "renamed over":
            (oldest.parent / "x.tmp").write_bytes(forged)
            os.replace(oldest.parent / "x.tmp", oldest)
        else:
            oldest.write_bytes(forged)
        if how == "mtime put back":
            os.utime(oldest, ns=(before.st_atime_ns, before.st_mtime_ns))
            assert oldest.stat().st_mtime_ns == before.st_mtime_ns and oldest.stat().st_size == before.st_size
        expected = "file 60_analyze_performance.html was changed after the run"
    code, since = _verify(home, "--since-last")
    assert code == 8 and since["since_last"] and expected in _problems(since)
    assert since["files_hashed"] == 1


def test_a_state_not_signed_with_the_key_is_not_trusted(home: Home) -> None:
    assert _verify(home)[0] == 0
    state = home.root / "var" / STATE
    data = json.loads(state.read_text())
    oldest = sorted(home.runs.glob("pipeline/*/*/60_analyze_performance.html"))[0]
    oldest.write_bytes(oldest.read_bytes().replace(b"0.19", b"0.01"))
    rel = oldest.relative_to(home.runs).as_posix()
    st = oldest.stat()
    data["files"][rel][:4] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]  # forged to hide it
    state.write_text(json.dumps(data))
    code, since = _verify(home, "--since-last")
    assert code == 8 and not since["since_last"] and "60_analyze_performance.html was changed" in _problems(since)


def test_pruning_at_scale_keeps_manifests_and_ledger_and_verifies(home: Home) -> None:
    entries = len(ledger.read_ledger(home.runs))
    result = CliRunner().invoke(
        cli, ["runs", "prune", "--keep-days", "90"], env={"SHIOL_HOME": str(home.root), "SHIOL_LEDGER_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    pruned = sorted(home.runs.glob("pipeline/*/*/PRUNED"))
    assert RUNS - 90 <= len(pruned) <= RUNS - 90 + 8 and f"pruned {len(pruned)} run folder(s)" in result.output
    assert len(list(home.runs.glob("pipeline/*/*/manifest.json"))) == RUNS
    assert len(ledger.read_ledger(home.runs)) == entries + len(pruned)
    for marker in pruned:
        assert not list(marker.parent.glob("60_analyze_performance.*"))
    code, full = _verify(home)
    assert code == 0, _problems(full)
    assert _verify(home, "--since-last")[0] == 0
    # per job: a job's own keep_days wins over the default; a job with neither is kept
    assert prune_runs(home.runs, keep_days=None, per_job={"data_update": 0}, key=KEY) == []
    now = datetime.now(UTC) + timedelta(days=1)
    due = {
        d.parent
        for d in home.runs.glob("pipeline/*/*/manifest.json")
        if not (d.parent / "PRUNED").exists() and (now - read_manifest(d.parent).started_at).days >= 30
    }
    again = prune_runs(home.runs, keep_days=None, per_job={"pipeline": 30}, now=now, key=KEY)
    assert set(again) == due and len(due) > 40


def test_prune_without_any_keep_days_is_a_usage_error(home: Home) -> None:
    result = CliRunner().invoke(cli, ["runs", "prune"], env={"SHIOL_HOME": str(home.root)})
    assert result.exit_code == 2 and "nothing to prune by: give --keep-days N" in result.output
    assert not list(home.runs.glob("pipeline/*/*/PRUNED"))


def test_an_output_rewritten_in_the_store_since_the_last_verify_is_found(home: Home) -> None:
    assert _verify(home)[0] == 0
    with home.store.connect() as conn:
        run_id = conn.execute("SELECT min(run_id) FROM predictions").fetchone()[0]
    code, since = _verify(home, "--since-last")
    assert code == 0 and since["since_last"]
    with home.store.transaction() as conn:
        conn.execute("UPDATE predictions SET pb = pb % 26 + 1 WHERE run_id = ? AND rank = 1", [run_id])
    code, since = _verify(home, "--since-last")
    assert code == 8 and since["since_last"] and since["files_hashed"] == 0
    assert "output predictions in the store differs from the hash its manifest recorded" in _problems(since)
