"""The typed manifest: exact round trip, schema-1 files still read, anything else refused by name."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from shiol_lib.archive import folders as archive
from shiol_lib.archive.manifest import SCHEMA_VERSION, Manifest, ManifestError, StepRecord, run_totals
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError

STARTED = datetime(2024, 7, 2, 3, 29, tzinfo=UTC)

# A manifest as the first release wrote it (no schema 2 fields, no artefacts); as every release did, its
# durations are those of its instants (the reader derives them).
SCHEMA_1 = {
    "schema": 1,
    "run_id": "20240702T032900Z-a1b2c3",
    "job": "pipeline",
    "slot": "2024-07-01T23:29:00-04:00",
    "draw_date": "2024-07-01",
    "trigger": "on-time",
    "attempt": 1,
    "status": "success",
    "started_at": STARTED.isoformat(),
    "finished_at": "2024-07-02T03:30:40.500000+00:00",
    "duration_s": 100.5,
    "seed": 20240701,
    "parent_run_id": None,
    "target_draw_date": "2024-07-03",
    "history_end": "2024-07-01",
    "input": {"draws_sha256": "ab" * 32, "draw_count": 1648},
    "outputs": {"predictions": "cd" * 32},
    "metrics": {"generate_predictions": {"tickets": 100}},
    "code": {"git_commit": "abc", "git_dirty": False},
    "environment": {"python": "3.11.7"},
    "error": None,
    "steps": [
        {
            "name": "update_data",
            "notebook": "10_update_data.ipynb",
            "status": "success",
            "started_at": STARTED.isoformat(),
            "finished_at": "2024-07-02T03:29:03.200000+00:00",
            "duration_s": 3.2,
            "parameters": {"offline": True},
            "output": "10_update_data.ipynb",
            "html": "10_update_data.html",
            "log": "10_update_data.log",
            "error": None,
            "error_class": None,
            "failed_cell": None,
            "command": "papermill ...",
        },
        {"name": "adaptive_analysis", "notebook": "20_analyze_signals.ipynb", "status": "pending"},
    ],
}


def test_a_schema_1_manifest_reads_into_types_and_writes_back_as_schema_2() -> None:
    manifest = Manifest.from_dict(SCHEMA_1)
    assert manifest.status is RunStatus.SUCCESS and manifest.draw_date == date(2024, 7, 1)
    assert manifest.slot == datetime.fromisoformat("2024-07-01T23:29:00-04:00")
    assert manifest.steps[1].status is StepStatus.PENDING and manifest.steps[1].parameters is None
    assert manifest.step("update_data").parameters == {"offline": True}
    assert manifest.schema == 1  # as written: verify then knows it recorded no artefact hashes
    manifest.schema = SCHEMA_VERSION
    data = manifest.to_dict()
    assert data["schema"] == SCHEMA_VERSION == 2 and data["artefacts"] == {}
    for key, value in SCHEMA_1.items():
        if key not in ("schema", "steps"):
            assert data[key] == value, key
    assert data["steps"][0] == SCHEMA_1["steps"][0]


def test_the_json_round_trip_is_exact_and_canonical() -> None:
    manifest = Manifest.from_dict(SCHEMA_1)
    text = manifest.to_json()
    again = Manifest.from_json(text)
    assert again == manifest and again.to_json() == text
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", "is a JSON list, not a manifest object"),
        ("null", "is a JSON NoneType, not a manifest object"),
        ('"x"', "not a manifest object"),
        ("{", "is not valid JSON"),
        ("[" * 100_000, "is not valid JSON"),
        (json.dumps({**SCHEMA_1, "schema": 7}), "has schema 7"),
        (json.dumps({**SCHEMA_1, "status": "exploded"}), "'status' is 'exploded', not one of running"),
        (json.dumps({**SCHEMA_1, "started_at": "yesterday"}), "'started_at' is 'yesterday', not an ISO-8601 instant"),
        (json.dumps({**SCHEMA_1, "started_at": "2024-07-02T03:29:00"}), "with its UTC offset"),
        (json.dumps({**SCHEMA_1, "steps": {"a": 1}}), "'steps' is not a list"),
        (json.dumps({**SCHEMA_1, "steps": [7]}), "step 1 is not an object"),
        (json.dumps({**SCHEMA_1, "attempt": "2"}), "'attempt' is '2', not a whole number"),
        (json.dumps({**SCHEMA_1, "run_id": ""}), "'run_id' is '', not a non-empty string"),
        (json.dumps({**SCHEMA_1, "draw_date": "07/01/2024"}), "not an ISO date"),
        (json.dumps({**SCHEMA_1, "outputs": []}), "'outputs' is [], not an object"),
    ],
)
def test_anything_that_is_not_a_manifest_is_refused_with_the_fault(body: str, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)) as caught:
        Manifest.from_json(body, where="runs/x/manifest.json")
    assert isinstance(caught.value, ArchiveError) and "runs/x/manifest.json" in str(caught.value)


def test_the_archive_reads_and_skips_damaged_manifests_with_a_warning(tmp_path, caplog) -> None:
    good = Manifest(
        run_id="20240702T032900Z-a1b2c3",
        job="pipeline",
        trigger="manual",
        status=RunStatus.RUNNING,
        started_at=STARTED,
        steps=[StepRecord("update_data", "10_update_data.ipynb")],
    )
    folder = archive.run_dir(tmp_path, "pipeline", good.run_id, STARTED)
    folder.mkdir(parents=True)
    archive.write_manifest(folder, good)
    bad = archive.run_dir(tmp_path, "pipeline", "20240702T040000Z-d4e5f6", STARTED)
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_bytes(b'{"run_id": "\xff\xfe"}')
    with caplog.at_level("WARNING"):
        found = archive.iter_manifests(tmp_path)
    assert found == [(folder, good)]
    assert "not UTF-8" in caplog.text and str(bad) in caplog.text
    with pytest.raises(ManifestError, match="not UTF-8"):
        archive.read_manifest(bad)


def test_run_totals_take_the_largest_peak_and_sum_the_cpu() -> None:
    steps = [
        StepRecord("a", "a.ipynb", peak_rss_mb=120.5, cpu_s=1.25),
        StepRecord("b", "b.ipynb"),
        StepRecord("c", "c.ipynb", peak_rss_mb=300.0, cpu_s=2.0),
    ]
    assert run_totals(steps) == (300.0, 3.25)
    assert run_totals([StepRecord("a", "a.ipynb")]) == (None, None)


def test_durations_and_run_totals_are_derived_yet_written_as_before() -> None:
    started = datetime(2024, 7, 2, 3, 29, tzinfo=UTC)
    steps = [
        StepRecord(
            "a",
            "a.ipynb",
            StepStatus.SUCCESS,
            started_at=started,
            finished_at=started + timedelta(seconds=1.2344),
            peak_rss_mb=120.5,
            cpu_s=1.25,
        ),
        StepRecord(
            "b",
            "b.ipynb",
            StepStatus.FAILED,
            started_at=started,
            finished_at=started + timedelta(seconds=3),
            peak_rss_mb=300.0,
            cpu_s=2.0,
        ),
    ]
    manifest = Manifest(
        run_id="20240702T032900Z-a1b2c3",
        job="pipeline",
        trigger="manual",
        status=RunStatus.FAILED,
        started_at=started,
        finished_at=started + timedelta(seconds=5),
        steps=steps,
    )
    data = json.loads(manifest.to_json())
    assert (data["duration_s"], data["peak_rss_mb"], data["cpu_s"]) == (5.0, 300.0, 3.25)
    assert [s["duration_s"] for s in data["steps"]] == [1.234, 3.0]  # ms precision, as recorded before
    data["duration_s"], data["steps"][0]["duration_s"], data["cpu_s"] = 99.0, 99.0, 99.0  # a stale stored copy
    again = Manifest.from_dict(data)
    assert (again.duration_s, again.steps[0].duration_s, again.cpu_s) == (5.0, 1.234, 3.25)  # never read back
    assert again.to_json() == manifest.to_json()
    with pytest.raises(ManifestError, match="duration_s"):
        Manifest.from_dict({**data, "duration_s": "long"})
    crashed = Manifest.from_dict({**json.loads(manifest.to_json()), "status": "crashed"})
    assert "cpu_s" not in json.loads(crashed.to_json())  # a crashed run's steps were not all measured
