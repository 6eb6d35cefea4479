"""Comparing manifests: the typed rerun comparison, its unchanged JSON, and the typed run diff."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shiol_lib.archive.compare import Comparison, Difference, RerunResult, compare_outputs, diff_manifests
from shiol_lib.archive.manifest import Manifest
from shiol_lib.domain.runs import RunStatus

ORIGINAL = Manifest(
    run_id="20240702T032900Z-a1b2c3",
    job="pipeline",
    trigger="on-time",
    status=RunStatus.SUCCESS,
    started_at=datetime(2024, 7, 2, 3, 29, tzinfo=UTC),
    steps=[],
    seed=20240701,
    input={"draws_sha256": "ab" * 32, "draw_count": 1648},
    outputs={"predictions": "cd" * 32},
)


def _repeat(**outputs: str) -> Manifest:
    return replace(ORIGINAL, run_id="20240703T010000Z-d4e5f6", trigger="rerun", outputs=outputs)


def test_identical_outputs_and_input_compare_identical() -> None:
    comparison = compare_outputs(ORIGINAL, _repeat(predictions="cd" * 32))
    assert isinstance(comparison, Comparison)
    assert comparison.identical and comparison.input_identical and comparison.mismatched == ()
    pair = comparison.outputs["predictions"]
    assert pair.same and pair.compared and pair.original == pair.rerun == "cd" * 32
    with pytest.raises(FrozenInstanceError):
        comparison.identical = False  # type: ignore[misc]


def test_a_differing_or_missing_output_is_mismatched_but_a_source_dependent_one_is_not() -> None:
    repeat = _repeat(predictions="ee" * 32, **{"artifact:metrics.update_data": "ff" * 32})
    original = replace(
        ORIGINAL, outputs={**ORIGINAL.outputs, "weights": "aa" * 32, "artifact:metrics.update_data": "00" * 32}
    )
    comparison = compare_outputs(original, repeat)
    assert not comparison.identical and comparison.mismatched == ("predictions", "weights")
    assert list(comparison.outputs) == ["artifact:metrics.update_data", "predictions", "weights"]
    source = comparison.outputs["artifact:metrics.update_data"]
    assert not source.same and not source.compared
    assert comparison.outputs["weights"].rerun is None


def test_other_input_data_or_no_outputs_is_never_identical() -> None:
    other_input = replace(_repeat(predictions="cd" * 32), input={"draws_sha256": "99" * 32})
    assert not compare_outputs(ORIGINAL, other_input).identical
    assert not compare_outputs(ORIGINAL, other_input).input_identical
    empty = replace(ORIGINAL, outputs={})
    nothing = compare_outputs(empty, replace(empty, run_id="20240703T010000Z-d4e5f6"))
    assert nothing.input_identical and nothing.mismatched == () and not nothing.identical


def _executed(folder: Path, run_id: str, shown: str) -> Path:
    """An executed ``writes.ipynb`` in ``folder`` that printed ``shown`` (its run id in it) in two pieces."""
    folder.mkdir()
    uuid = f"{hash(folder) & 0xFFFFF:05x}"  # pandas gives each styled table a random id
    cell = {
        "cell_type": "code",
        "execution_count": 3,
        "metadata": {"papermill": {"duration": 0.5}},
        "source": "print(x)",
        "outputs": [
            {"output_type": "stream", "name": "stdout", "text": [f"{shown} run {run_id}", "\n"]},
            {"output_type": "stream", "name": "stdout", "text": "end\n"},
            {"output_type": "stream", "name": "stderr", "text": f"warning: logged from {folder}\n"},
            {"output_type": "display_data", "data": {"text/plain": ["42"]}, "metadata": {}},
            {
                "output_type": "display_data",
                "data": {"text/html": f'<table id="T_{uuid}">', "text/plain": repr(object())},
            },
        ],
    }
    (folder / "writes.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}}), encoding="utf-8")
    return folder


def test_runs_that_stored_nothing_are_compared_by_what_their_notebooks_showed(tmp_path: Path) -> None:
    from shiol_lib.archive.manifest import StepRecord

    first = replace(ORIGINAL, job="weekly", outputs={}, input={}, steps=[StepRecord("writes", "writes.ipynb")])
    second = replace(first, run_id="20240703T010000Z-d4e5f6", trigger="rerun")
    same = compare_outputs(
        first,
        second,
        folders=(_executed(tmp_path / "a", first.run_id, "x=1"), _executed(tmp_path / "b", second.run_id, "x=1")),
    )
    assert same.identical and list(same.outputs) == ["notebook:writes"]  # run ids, addresses, stderr: not compared
    other = compare_outputs(first, second, folders=(tmp_path / "a", _executed(tmp_path / "c", second.run_id, "x=2")))
    assert not other.identical and other.mismatched == ("notebook:writes",)
    gone = compare_outputs(first, second, folders=(tmp_path / "a", tmp_path / "missing"))
    assert not gone.identical and gone.outputs["notebook:writes"].rerun is None


def test_the_rerun_json_keeps_the_keys_values_and_order_it_always_had() -> None:
    comparison = compare_outputs(ORIGINAL, _repeat(predictions="ee" * 32))
    result = RerunResult("20240703T010000Z-d4e5f6", ORIGINAL.run_id, ORIGINAL.status, Path("/runs/x"), comparison)
    before = json.dumps(
        {  # what `shiol rerun --json` printed from the dicts
            "run_id": "20240703T010000Z-d4e5f6",
            "rerun_of": ORIGINAL.run_id,
            "status": ORIGINAL.status,
            "directory": "/runs/x",
            "identical": False,
            "input_identical": True,
            "mismatched": ["predictions"],
            "outputs": {"predictions": {"original": "cd" * 32, "rerun": "ee" * 32, "compared": True}},
        },
        indent=2,
    )
    assert result.to_json() == before
    assert json.loads(result.to_json())["status"] == "success"


def test_diff_lists_typed_differences_in_field_order() -> None:
    second = replace(_repeat(predictions="ee" * 32), seed=7)
    differences = diff_manifests(ORIGINAL, second)
    assert differences == [Difference("outputs.predictions", "cd" * 32, "ee" * 32), Difference("seed", 20240701, 7)]
    assert differences[1].to_dict() == {"field": "seed", "first": 20240701, "second": 7}
    assert diff_manifests(ORIGINAL, ORIGINAL) == []
