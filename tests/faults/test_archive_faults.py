"""The archive against tampering: each class through the real `shiol runs verify`, on a real store and archive.

Without the key an attacker who can write runs/ (and the store) edits pages, adds files and folders at
every depth, fakes a run in flight or rewrites a closed run's outputs; with the key set they roll the
history back. Every case must exit 8 naming what differs; the untouched archive must verify clean.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from archive_support import KEY, T0, Home, running_row, store_outputs
from click.testing import CliRunner

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.cli.main import cli
from shiol_lib.reports import dashboard
from shiol_lib.store import predictions as prediction_table
from shiol_lib.store import runs as run_table

pytestmark = pytest.mark.faults("archive-tamper")


def _home(root: Path, key: str | None) -> Home:
    home = Home(root, key=key)
    for minutes in (0, 5):
        home.close_run(minutes)
    home.close_run(10, outputs=True)
    dashboard.write_index(home.runs, ledger_key=key)
    return home


def _verify(home: Home, *args: str) -> tuple[int, str]:
    env = {"SHIOL_HOME": str(home.root), **({"SHIOL_LEDGER_KEY": home.key} if home.key else {})}
    result = CliRunner().invoke(cli, ["runs", "verify", *args], env=env)
    return result.exit_code, result.output


def _edit_dashboard(home: Home) -> str:
    page = home.runs / "index.html"
    page.write_text(page.read_text().replace("</body>", "<h1>EDGE FOUND (p = 0.0001)</h1><script></script></body>"))
    return "page index.html was changed"


def _edit_run_page(home: Home) -> str:
    page = sorted(home.runs.glob("pipeline/*/*/index.html"))[0]
    page.write_text(page.read_text() + "<p>EDGE FOUND</p>")
    return f"page {page.relative_to(home.runs).as_posix()} was changed"


def _unknown_file(where: str) -> Callable[[Home], str]:
    def tamper(home: Home) -> str:
        (home.runs / where).write_text("<script>alert(1)</script>")
        return f"the file {where} is not"

    return tamper


def _fabricated_running_row(home: Home) -> str:
    run_id = archive.new_run_id(T0)
    folder = archive.run_dir(home.runs, "pipeline", run_id, T0)
    folder.mkdir()
    run_table.insert_run(home.store, running_row(run_id, T0, folder, host="elsewhere.example"))
    return f"the run folder {folder} is not in the ledger"


def _rewritten_outputs(home: Home) -> str:
    store_outputs(home.store, sorted(home.runs.glob("pipeline/*/*"))[-1].name, seed=7)
    return "output predictions in the store differs from the hash its manifest recorded"


def _last_run(home: Home) -> str:
    return sorted(home.runs.glob("pipeline/*/*"))[-1].name


def _rewritten_artifact(home: Home) -> str:
    prediction_table.save_artifact(home.store, _last_run(home), "metrics.generate_predictions", {"seed": 99})
    return "output artifact:metrics.generate_predictions in the store differs from the hash its manifest recorded"


def _one_ticket_changed(home: Home) -> str:
    with home.store.transaction() as conn:
        conn.execute("UPDATE predictions SET pb = pb + 1 WHERE run_id = ? AND rank = 2", [_last_run(home)])
    return "output predictions in the store differs from the hash its manifest recorded"


def _tickets_deleted(home: Home) -> str:
    prediction_table.discard_predictions(home.store, _last_run(home))
    return "output predictions that the manifest recorded is missing from the store"


def _outputs_added_to_a_run_without(home: Home) -> str:
    store_outputs(home.store, sorted(home.runs.glob("pipeline/*/*"))[0].name, seed=1)
    return "output predictions is in the store under this run's id but not in its manifest"


CASES = {
    "edited dashboard": _edit_dashboard,
    "edited run page": _edit_run_page,
    "file in runs/": _unknown_file("notes.html"),
    "file in a job folder": _unknown_file("pipeline/notes.html"),
    "file in a day folder": _unknown_file("pipeline/2026-11-27/notes.html"),
    "fabricated running row": _fabricated_running_row,
    "outputs rewritten in the store": _rewritten_outputs,
    "an artefact rewritten in the store": _rewritten_artifact,
    "one ticket changed in the store": _one_ticket_changed,
    "tickets deleted from the store": _tickets_deleted,
    "outputs added under a run that stored none": _outputs_added_to_a_run_without,
}


def test_the_untouched_archive_verifies_clean_also_after_prune(tmp_path: Path) -> None:
    home = _home(tmp_path / "home", KEY)
    assert _verify(home)[0] == 0
    env = {"SHIOL_HOME": str(home.root), "SHIOL_LEDGER_KEY": KEY}
    assert CliRunner().invoke(cli, ["runs", "prune", "--keep-days", "0"], env=env).exit_code == 0
    assert _verify(home)[0] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tampering_without_the_key_is_found(tmp_path: Path, case: str) -> None:
    home = _home(tmp_path / "home", None)
    expected = CASES[case](home)
    code, out = _verify(home)
    assert code == 8 and expected in out, out


def test_a_rollback_with_the_key_set_is_found_by_a_witness_kept_elsewhere(tmp_path: Path) -> None:
    home = _home(tmp_path / "home", KEY)
    kept = tmp_path / "elsewhere" / "witness.json"
    kept.parent.mkdir()
    env = {"SHIOL_HOME": str(home.root), "SHIOL_LEDGER_KEY": KEY}
    assert CliRunner().invoke(cli, ["runs", "witness", "--output", str(kept)], env=env).exit_code == 0
    lines = home.ledger_path.read_text().splitlines(keepends=True)
    for line in lines[1:]:  # cut the tail, delete the runs and their rows, point the anchor back
        run_id = json.loads(line)["run_id"]
        shutil.rmtree(archive.find_run_dir(home.runs, run_id))
        with home.store.transaction() as conn:
            for table in ("runs", "predictions", "artifacts"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    home.ledger_path.write_text(lines[0])
    head = ledger.head(home.runs)
    assert head is not None
    run_table.anchor_ledger(home.store, (head.seq, head.hash))
    for page in [home.runs / "index.html", home.runs / "pages.json", *home.runs.glob("pipeline/*/*/index.html")]:
        page.unlink()
    code, out = _verify(home, "--witness", str(kept))
    assert code == 8 and "the ledger ends at entry 1 but the witness" in out, out
