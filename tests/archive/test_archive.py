import errno
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.archive.retention import prune_runs
from shiol_lib.archive.verify import artefact_hashes, verify_ledger
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError
from shiol_lib.reports import dashboard as run_index

T0 = datetime(2026, 11, 28, 4, 29, tzinfo=UTC)  # 23:29 ET on 2026-11-27


def make_run(runs: Path, job: str = "pipeline", started: datetime = T0, status: str = "success") -> tuple[str, Path]:
    run_id = archive.new_run_id(started)
    directory = archive.run_dir(runs, job, run_id, started)
    directory.mkdir(parents=True)
    for name in ("10_update_data.ipynb", "10_update_data.html", "10_update_data.log"):
        (directory / name).write_text(name)
    manifest = Manifest(
        run_id=run_id,
        job=job,
        trigger="manual",
        status=RunStatus(status),
        started_at=started,
        finished_at=started + timedelta(seconds=12.5),
        target_draw_date=date(2024, 7, 1),
        steps=[
            StepRecord(
                "update_data",
                "10_update_data.ipynb",
                StepStatus(status),
                output="10_update_data.ipynb",
                html="10_update_data.html",
            )
        ],
    )
    manifest.artefacts = artefact_hashes(directory)
    path = archive.write_manifest(directory, manifest)
    ledger.append_entry(runs, run_id=run_id, job=job, status=status, manifest_path=path)
    return run_id, directory


def test_run_dir_uses_the_new_york_date(tmp_path):
    run_id = archive.new_run_id(T0)
    assert archive.run_dir(tmp_path, "pipeline", run_id, T0) == tmp_path / "pipeline" / "2026-11-27" / run_id


@pytest.mark.parametrize("bad", ["../etc", "a/b", "20261128T042900Z-zzzzzz", "", "20261128T042900Z-a1b2c3/.."])
def test_bad_run_ids_are_refused(tmp_path, bad):
    with pytest.raises(ArchiveError, match="is not a run id"):
        archive.find_run_dir(tmp_path, bad)


def test_unknown_run_id_says_how_to_list(tmp_path):
    with pytest.raises(ArchiveError, match="shiol runs list"):
        archive.find_run_dir(tmp_path, "20261128T042900Z-a1b2c3")


def test_unwritable_runs_dir_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ArchiveError, match="not writable"):
        archive.ensure_writable(blocker / "runs")


def test_disk_full_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    target.write_text('{"status": "running"}')

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ArchiveError, match="the disk is full"):
        archive.write_atomic(target, b'{"status": "success"}')
    assert target.read_text() == '{"status": "running"}'
    assert list(tmp_path.iterdir()) == [target]


def test_ledger_chains_and_verifies(tmp_path):
    first, _ = make_run(tmp_path)
    second, _ = make_run(tmp_path, started=T0 + timedelta(minutes=5))
    entries = ledger.read_ledger(tmp_path)
    assert [e["run_id"] for e in entries] == [first, second]
    assert entries[1]["prev_hash"] == entries[0]["hash"] and entries[0]["prev_hash"] == ledger.GENESIS
    assert verify_ledger(tmp_path) == []


def test_edited_ledger_line_is_detected(tmp_path):
    make_run(tmp_path)
    make_run(tmp_path, started=T0 + timedelta(minutes=5), status="failed")
    path = tmp_path / ledger.LEDGER
    path.write_text(path.read_text().replace('"status":"failed"', '"status":"success"'))
    problems = verify_ledger(tmp_path)
    assert [(p.line, p.problem) for p in problems] == [(2, "content does not match its hash (line edited)")]


def test_removed_ledger_line_is_detected(tmp_path):
    for minutes in (0, 5, 10):
        make_run(tmp_path, started=T0 + timedelta(minutes=minutes))
    path = tmp_path / ledger.LEDGER
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    problems = verify_ledger(tmp_path)
    assert any("does not chain" in p.problem for p in problems) and any("sequence 3" in p.problem for p in problems)


def test_edited_manifest_is_detected(tmp_path):
    _, directory = make_run(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["status"] = "failed"
    (directory / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_ledger(tmp_path)
    assert len(problems) == 1 and "was changed after the run" in problems[0].problem


def test_prune_keeps_manifests_and_ledger(tmp_path):
    old_id, old_dir = make_run(tmp_path, started=T0 - timedelta(days=40))
    new_id, new_dir = make_run(tmp_path, started=T0)
    pruned = prune_runs(tmp_path, keep_days=30, now=T0 + timedelta(hours=1))
    assert pruned == [old_dir]
    assert sorted(p.name for p in old_dir.iterdir()) == ["PRUNED", "manifest.json"]
    assert (new_dir / "10_update_data.html").exists()
    assert verify_ledger(tmp_path) == []  # the prune entry says the files are gone on purpose
    last = ledger.read_ledger(tmp_path)[-1]
    assert last["kind"] == "prune" and last["run_id"] == old_id
    assert last["pruned"] == ["10_update_data.html", "10_update_data.ipynb", "10_update_data.log"]


def test_index_lists_runs_newest_first_with_relative_links(tmp_path):
    old_id, _ = make_run(tmp_path, started=T0 - timedelta(days=1), status="failed")
    new_id, new_dir = make_run(tmp_path, started=T0)
    page = run_index.write_index(tmp_path).read_text()
    table = page[page.index('<table id="runs">') :]
    assert table.index(new_id) < table.index(old_id)
    rel = os.path.relpath(new_dir, tmp_path)
    assert f'href="{rel}/10_update_data.html"' in page and f'href="{rel}/10_update_data.ipynb"' in page
    assert f'href="{rel}/index.html"' in page and (new_dir / "index.html").is_file()
    assert 'class="status status-failed"' in page and "2024-07-01" in page
