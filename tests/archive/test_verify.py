"""`shiol runs verify` as an attacker and a crash would try it: every tamper case is found, none crashes.

Runs are closed the way the job runner closes them (files, manifest with artefact hashes, ledger
entry, store row and ledger anchor in one transaction), on a real DuckDB store; the checks go through
the real CLI command where the exit code matters.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from archive_support import KEY, T0, Home

from shiol_lib.archive import folders as archive
from shiol_lib.archive import ledger
from shiol_lib.archive.retention import prune_runs
from shiol_lib.store import runs as run_table


@pytest.fixture
def home(tmp_path: Path) -> Home:
    built = Home(tmp_path / "home")
    for minutes in (0, 5, 10):
        built.close_run(minutes)
    return built


def _forge(lines: list[dict], **changes: object) -> dict:
    """An entry appended with a correctly recomputed plain hash: what someone without the key can do."""
    last = lines[-1]
    entry = {**last, "seq": last["seq"] + 1, "prev_hash": last["hash"], **changes}
    entry.pop("hmac", None)
    entry["hash"] = ledger.entry_hash(entry)
    return entry


def test_the_untouched_archive_verifies_through_the_cli(home: Home) -> None:
    assert home.problems() == []
    code, out = home.cli_verify()
    assert code == 0 and "archive intact: 3 ledger entries, 3 runs, 9 files" in out
    assert "signatures not checked" in out


def test_deleting_the_last_ledger_line_is_found_through_the_store_anchor(home: Home) -> None:
    lines = home.ledger_path.read_text().splitlines(keepends=True)
    home.ledger_path.write_text("".join(lines[:-1]))  # a chain that is still perfectly consistent
    problems = home.problems()
    assert any("the ledger ends at entry 2 but the store anchored entry 3" in p for p in problems)
    assert any("the store closed this run (success) but the ledger has no entry" in p for p in problems)
    assert any("is not in the ledger" in p for p in problems)
    code, out = home.cli_verify()
    assert code == 8 and "archive NOT intact" in out


@pytest.mark.parametrize("damage", ["empty", "removed"])
def test_an_emptied_or_removed_ledger_is_found(home: Home, damage: str) -> None:
    if damage == "empty":
        home.ledger_path.write_text("")
    else:
        home.ledger_path.unlink()
    problems = home.problems()
    assert any("the ledger ends at entry 0 but the store anchored entry 3" in p for p in problems)
    assert sum("but the ledger has no entry for it" in p for p in problems) == 3
    assert home.cli_verify()[0] == 8


def test_a_forged_entry_with_a_recomputed_hash_is_found_through_the_anchor(home: Home) -> None:
    entries = ledger.read_ledger(home.runs)
    forged = _forge(entries, status="success", run_id=entries[0]["run_id"])
    with open(home.ledger_path, "a") as handle:
        handle.write(json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n")
    assert ledger.check_chain(ledger.read_lines(home.runs)) == []  # the chain alone cannot tell
    assert any("entry 4 is past the head the store anchored (entry 3)" in p for p in home.problems())


def test_a_consistently_rewritten_ledger_is_found_through_the_anchor(home: Home) -> None:
    entries = ledger.read_ledger(home.runs)
    previous = ledger.GENESIS
    rewritten = []
    for entry in entries:  # flip every status and recompute the whole chain
        entry = {**entry, "status": "failed", "prev_hash": previous}
        entry["hash"] = ledger.entry_hash(entry)
        previous = entry["hash"]
        rewritten.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
    home.ledger_path.write_text("\n".join(rewritten) + "\n")
    assert ledger.check_chain(ledger.read_lines(home.runs)) == []
    assert any("entry 3 is not the one the store anchored" in p for p in home.problems())


def test_with_a_key_a_forged_entry_is_found_even_when_the_store_anchor_is_forged_too(tmp_path: Path) -> None:
    signed = Home(tmp_path / "signed", key=KEY)
    for minutes in (0, 5):
        signed.close_run(minutes)
    assert signed.problems() == [] and signed.cli_verify(KEY)[0] == 0
    entries = ledger.read_ledger(signed.runs)
    forged = _forge(entries)
    with open(signed.ledger_path, "a") as handle:
        handle.write(json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n")
    run_table.anchor_ledger(signed.store, (forged["seq"], forged["hash"]))  # whoever can write the store too
    without_key = signed.problems(key="")
    assert without_key == []  # documented: without the key, someone who writes both can forge
    assert signed.problems() == ["is not signed with SHIOL_LEDGER_KEY"]
    code, out = signed.cli_verify(KEY)
    assert code == 8 and "ledger line 3" in out
    assert signed.problems(key="another-key") == [
        "signature does not match SHIOL_LEDGER_KEY (forged or edited)",
        "signature does not match SHIOL_LEDGER_KEY (forged or edited)",
        "is not signed with SHIOL_LEDGER_KEY",
    ]


@pytest.mark.parametrize(
    "name", ["60_analyze_performance.html", "60_analyze_performance.ipynb", "60_analyze_performance.log"]
)
def test_an_edited_artefact_is_found(home: Home, name: str) -> None:
    directory = next(home.runs.glob("pipeline/*/*"))
    path = directory / name
    path.write_text(path.read_text().replace("No evidence of an edge", "Evidence of an edge") + " ")
    assert home.problems() == [f"file {name} was changed after the run (its sha256 differs from the manifest's)"]


def test_a_deleted_artefact_and_an_extra_file_and_folder_are_found(home: Home) -> None:
    first, second = sorted(home.runs.glob("pipeline/*/*"))[:2]
    (first / "60_analyze_performance.ipynb").unlink()
    (second / "extra.html").write_text("<script>alert(1)</script>")
    stray = archive.run_dir(home.runs, "pipeline", archive.new_run_id(T0), T0)
    stray.mkdir(parents=True)
    problems = home.problems()
    assert "file 60_analyze_performance.ipynb is missing (not recorded as pruned)" in problems
    assert "file extra.html is in the run folder but not in its manifest" in problems
    assert any(p.startswith(f"the run folder {stray} is not in the ledger") for p in problems)


@pytest.mark.parametrize("body", [b"[]", b"\xff\xfe not utf-8", b'{"run_id": 7}', b"{"])
def test_a_malformed_manifest_is_reported_not_raised(home: Home, body: bytes) -> None:
    directory = next(home.runs.glob("pipeline/*/*"))
    (directory / "manifest.json").write_bytes(body)
    problems = home.problems()
    assert any("was changed after the run" in p for p in problems)
    assert any("manifest" in p and ("not" in p or "is 7" in p) for p in problems if "changed" not in p)


def test_non_utf8_and_non_json_ledger_lines_are_reported_and_a_run_can_still_append(home: Home) -> None:
    with open(home.ledger_path, "ab") as handle:
        handle.write(b"\xff\xfe garbage\n[1, 2]\n")
    problems = home.problems()
    assert "the line is not UTF-8 text (byte 0): the ledger was altered" in problems
    assert "the line is a JSON list, not an entry: the ledger was altered" in problems
    home.close_run(20)  # the next run still closes: the damaged lines are chained over, not fatal
    entries = ledger.read_ledger(home.runs)
    assert entries[-1]["seq"] == 6 and ledger.read_lines(home.runs)[-1].entry == entries[-1]


def test_pruned_files_are_not_reported_missing_and_verify_stays_clean(home: Home) -> None:
    pruned = prune_runs(home.runs, keep_days=0, now=T0 + timedelta(days=1))
    assert len(pruned) == 3
    head = ledger.head(home.runs)
    run_table.anchor_ledger(home.store, (head.seq, head.hash))
    assert home.problems() == []
    assert home.cli_verify()[0] == 0


def test_step_results_for_a_dead_run_are_refused_by_the_store(home: Home) -> None:
    from shiol_lib.errors import StoreError
    from shiol_lib.store import predictions as prediction_table

    run_id, _ = home.close_run(30, status="crashed")
    with pytest.raises(StoreError, match=f"run {run_id} is closed as crashed; its step results are refused"):
        prediction_table.save_artifact(home.store, run_id, "metrics.x", {"a": 1})
    prediction_table.save_artifact(home.store, "manual", "metrics.x", {"a": 1})  # a hand run is welcome
