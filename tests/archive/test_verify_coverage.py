"""`shiol runs verify` over every byte of runs/, the store's outputs, runs in flight and a witness.

Real archives on a real DuckDB store, pages written by the real dashboard, checks through the real CLI
(exit 8 naming what differs); an untouched archive verifies clean, also after `shiol runs prune`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from archive_support import KEY, T0, Home, running_row, store_outputs
from click.testing import CliRunner

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger, witness
from shiol_lib.archive.hashing import sha256_file
from shiol_lib.archive.pages import CHUNK_DIR, PAGES
from shiol_lib.cli.main import cli
from shiol_lib.reports import dashboard
from shiol_lib.store import predictions as prediction_table
from shiol_lib.store import runs as run_table


@pytest.fixture
def keyed(tmp_path: Path) -> Home:
    """Three closed runs (the newest with stored outputs), signed, with their pages written."""
    built = Home(tmp_path / "home", key=KEY)
    for minutes in (0, 5):
        built.close_run(minutes)
    built.close_run(10, outputs=True)
    dashboard.write_index(built.runs, ledger_key=KEY)
    return built


def _cli(home: Home, *args: str) -> tuple[int, str]:
    env = {"SHIOL_HOME": str(home.root), **({"SHIOL_LEDGER_KEY": home.key} if home.key else {})}
    result = CliRunner().invoke(cli, ["runs", *args], env=env)
    return result.exit_code, result.output


def test_an_untouched_archive_with_its_pages_verifies_clean_also_after_prune(keyed: Home) -> None:
    assert keyed.problems() == []
    code, out = _cli(keyed, "verify")
    assert code == 0 and "archive intact: 3 ledger entries, 3 runs, 15 files" in out  # 9 artefacts, 5 pages, 1 chunk
    code, out = _cli(keyed, "prune", "--keep-days", "0")
    assert code == 0 and "pruned 3 run folder(s)" in out
    code, out = _cli(keyed, "verify")
    assert code == 0 and "archive intact: 6 ledger entries" in out, out


def test_an_edited_dashboard_is_found(keyed: Home) -> None:
    page = keyed.runs / "index.html"
    page.write_text(page.read_text().replace("</body>", "EDGE FOUND (p = 0.0001)<script>alert(1)</script></body>"))
    code, out = _cli(keyed, "verify")
    assert code == 8 and "page index.html was changed after it was written" in out


def test_an_edited_run_page_is_found(keyed: Home) -> None:
    page = sorted(keyed.runs.glob("pipeline/*/*/index.html"))[0]
    page.write_text(page.read_text() + "<p>EDGE FOUND</p>")
    code, out = _cli(keyed, "verify")
    assert code == 8 and f"page {page.relative_to(keyed.runs).as_posix()} was changed after it was written" in out


def test_a_page_and_its_record_rewritten_without_the_key_are_found(keyed: Home) -> None:
    page = keyed.runs / "index.html"
    page.write_text("<h1>EDGE FOUND</h1>")
    record = json.loads((keyed.runs / PAGES).read_text())
    record["pages"]["index.html"] = sha256_file(page)
    record.pop("hmac")
    (keyed.runs / PAGES).write_text(json.dumps(record))
    code, out = _cli(keyed, "verify")
    assert code == 8 and "the pages record pages.json is not signed with SHIOL_LEDGER_KEY" in out
    record["hmac"] = "0" * 64
    (keyed.runs / PAGES).write_text(json.dumps(record))
    code, out = _cli(keyed, "verify")
    assert code == 8 and "signature of the pages record pages.json does not match" in out


def test_older_pages_put_back_are_found(keyed: Home, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("index.html", PAGES):
        shutil.copy(keyed.runs / name, saved / name)
    keyed.close_run(20)
    dashboard.write_index(keyed.runs, ledger_key=KEY)
    assert keyed.problems() == []
    for name in ("index.html", PAGES):
        shutil.copy(saved / name, keyed.runs / name)
    problems = keyed.problems()
    assert any("the pages show entry 3 but the ledger is at entry 4" in p for p in problems), problems


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("notes.txt", "the file notes.txt is not part of the archive"),
        (".hidden", "the file .hidden is not part of the archive"),
        ("pipeline/notes.txt", "the file pipeline/notes.txt is not a day folder"),
        ("pipeline/not-a-day/", "the folder pipeline/not-a-day is not a day folder"),
        ("pipeline/2026-11-27/notes.txt", "the file pipeline/2026-11-27/notes.txt is not a run folder"),
        ("pipeline/2026-11-27/x/y.html", "the folder pipeline/2026-11-27/x is not a run folder"),
        ("pipeline/2026-11-01/", "the folder pipeline/2026-11-01 is empty"),
        ("other-job/", "the folder other-job is empty"),
        ("reruns/junk.txt", "the file reruns/junk.txt is not the rerun folder of a run the ledger names"),
        ("reruns/20261127T000000Z-abcdef/", "the folder reruns/20261127T000000Z-abcdef is not the rerun folder"),
        ("RUN/x/index.html", "file x is in the run folder but not in its manifest"),
        ("RUN/x.txt", "file x.txt is in the run folder but not in its manifest"),
    ],
)
def test_anything_the_ledger_does_not_account_for_is_found_at_any_depth(keyed: Home, where: str, expected: str) -> None:
    run = sorted(keyed.runs.glob("pipeline/*/*"))[0]
    path = keyed.runs / where.replace("RUN", run.relative_to(keyed.runs).as_posix())
    if where.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("<script>alert(1)</script>")
    code, out = _cli(keyed, "verify")
    assert code == 8 and expected in out, out


def test_a_rerun_folder_of_an_archived_run_is_allowed(keyed: Home) -> None:
    run_id = sorted(keyed.runs.glob("pipeline/*/*"))[0].name
    stamp = keyed.runs / "reruns" / run_id / "20261206T101010Z"
    stamp.mkdir(parents=True)
    (stamp / "50_generate_predictions.ipynb").write_text("{}")
    assert keyed.problems() == []
    (keyed.runs / "reruns" / run_id / "notes.txt").write_text("x")
    assert any("reruns/" in p and "notes.txt" in p for p in keyed.problems())


def _running(home: Home, *, pid: int, host: str, heartbeat: datetime) -> Path:
    started = T0 + timedelta(hours=1)
    run_id = archive.new_run_id(started)
    folder = archive.run_dir(home.runs, "pipeline", run_id, started)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    run_table.insert_run(home.store, running_row(run_id, started, folder, pid=pid, host=host, heartbeat=heartbeat))
    return folder


def test_a_run_in_flight_on_this_host_is_excused(keyed: Home) -> None:
    _running(keyed, pid=os.getpid(), host=socket.gethostname(), heartbeat=datetime.now(UTC))
    code, out = _cli(keyed, "verify")
    assert code == 0, out


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.parametrize("fabricated", ["other host", "dead process", "stale heartbeat"])
def test_a_fabricated_running_row_does_not_hide_an_unknown_folder(keyed: Home, fabricated: str) -> None:
    now = datetime.now(UTC)
    pid, host, heartbeat = os.getpid(), socket.gethostname(), now
    if fabricated == "other host":
        host = "elsewhere.example"
    elif fabricated == "dead process":
        pid = _dead_pid()
    else:
        heartbeat = now - timedelta(hours=2)
    folder = _running(keyed, pid=pid, host=host, heartbeat=heartbeat)
    code, out = _cli(keyed, "verify")
    assert code == 8 and f"the run folder {folder} is not in the ledger: the store says it is running" in out


def test_a_rewritten_output_in_the_store_is_found(keyed: Home) -> None:
    run_id = sorted(keyed.runs.glob("pipeline/*/*"))[-1].name
    store_outputs(keyed.store, run_id, seed=2)  # what a rerun under the archived run's id did
    code, out = _cli(keyed, "verify")
    assert code == 8 and "output predictions in the store differs from the hash its manifest recorded" in out
    assert "output artifact:metrics.generate_predictions in the store differs" in out


def test_outputs_added_or_deleted_under_a_closed_run_are_found(keyed: Home) -> None:
    first, last = (p.name for p in sorted(keyed.runs.glob("pipeline/*/*"))[::2])
    prediction_table.save_artifact(keyed.store, first, "metrics.extra", {"a": 1})
    prediction_table.discard_predictions(keyed.store, last)
    problems = [p.as_text() for p in keyed.verify().problems]
    assert any(first in p and "output artifact:metrics.extra is in the store" in p for p in problems)
    assert any(last in p and "output predictions that the manifest recorded is missing" in p for p in problems)


def test_a_crashed_runs_discarded_tickets_are_no_problem(keyed: Home) -> None:
    keyed.close_run(30, status="crashed", outputs=True)
    dashboard.write_index(keyed.runs, ledger_key=KEY)
    assert keyed.problems() == []


def _roll_back(home: Home, keep: int) -> None:
    """Erase the newest runs without the key: ledger tail, folders, store rows, anchor pointed back."""
    lines = home.ledger_path.read_text().splitlines(keepends=True)
    for line in lines[keep:]:
        run_id = json.loads(line)["run_id"]
        shutil.rmtree(archive.find_run_dir(home.runs, run_id))
        with home.store.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
            conn.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
            conn.execute("DELETE FROM artifacts WHERE run_id = ?", [run_id])
    home.ledger_path.write_text("".join(lines[:keep]))
    head = ledger.head(home.runs)
    assert head is not None
    run_table.anchor_ledger(home.store, (head.seq, head.hash))
    dashboard.write_index(home.runs)  # pages without the key: the witness is what this test is about
    (home.runs / PAGES).unlink()
    shutil.rmtree(home.runs / CHUNK_DIR)  # the dashboard's month chunks go with the pages
    for page in [home.runs / "index.html", *home.runs.glob("*/index.html"), *home.runs.glob("pipeline/*/*/index.html")]:
        page.unlink()


def test_a_rollback_with_the_key_set_is_found_by_the_witness(keyed: Home, tmp_path: Path) -> None:
    kept = tmp_path / "kept-elsewhere.json"
    code, out = _cli(keyed, "witness", "--output", str(kept))
    assert code == 0 and "witness of ledger entry 3 written" in out
    code, out = _cli(keyed, "verify", "--witness", str(kept))
    assert code == 0 and "it reaches the witnessed entry 3" in out
    _roll_back(keyed, keep=1)
    assert _cli(keyed, "verify")[0] == 0  # the anchor alone cannot tell: its sequence and hash are not secret
    code, out = _cli(keyed, "verify", "--witness", str(kept))
    assert code == 8 and "the ledger ends at entry 1 but the witness" in out and "saw entry 3" in out


def test_a_rewritten_ledger_and_a_forged_witness_are_found(keyed: Home, tmp_path: Path) -> None:
    kept = tmp_path / "witness.json"
    head = ledger.head(keyed.runs)
    assert head is not None
    kept.write_text(witness.make(head.seq, "f" * 64, KEY).to_json())
    code, out = _cli(keyed, "verify", "--witness", str(kept))
    assert code == 8 and "entry 3 is not the one witnessed" in out
    data = json.loads(witness.make(head.seq, head.hash, KEY).to_json())
    kept.write_text(json.dumps({**data, "seq": 2}))
    code, out = _cli(keyed, "verify", "--witness", str(kept))
    assert code == 8 and "the witness's signature does not match SHIOL_LEDGER_KEY" in out


def test_each_ledger_append_logs_a_witness_that_verify_reads(
    keyed: Home, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="shiol_lib.archive.witness"):
        keyed.close_run(40)
    log_file = tmp_path / "shiol.log"
    log_file.write_text("\n".join(f"2026-12-06 INFO {r.name}: {r.getMessage()}" for r in caplog.records) + "\n")
    seen = witness.read(log_file)
    assert seen.seq == 4 and seen.signature_ok(KEY)
    dashboard.write_index(keyed.runs, ledger_key=KEY)
    code, out = _cli(keyed, "verify", "--witness", str(log_file))
    assert code == 0, out


def test_a_file_that_holds_no_witness_is_refused(keyed: Home, tmp_path: Path) -> None:
    kept = tmp_path / "empty.json"
    kept.write_text('{"seq": 3}')
    code, out = _cli(keyed, "verify", "--witness", str(kept))
    assert code == 7 and "holds no ledger witness" in out


def test_pages_of_an_older_archive_are_reported_until_rewritten(keyed: Home) -> None:
    (keyed.runs / PAGES).unlink()  # an archive written before the pages record existed
    code, out = _cli(keyed, "verify")
    assert code == 8 and "the file index.html is a page the workbench did not write" in out
    code, out = _cli(keyed, "pages")
    assert code == 0 and "pages rewritten and recorded" in out
    assert _cli(keyed, "verify")[0] == 0


def test_no_witness_is_exported_of_a_ledger_the_store_does_not_anchor(keyed: Home) -> None:
    lines = keyed.ledger_path.read_text().splitlines(keepends=True)
    keyed.ledger_path.write_text("".join(lines[:-1]))
    code, out = _cli(keyed, "witness")
    assert code == 8 and "the ledger ends at entry 2 but the store anchored entry 3" in out
