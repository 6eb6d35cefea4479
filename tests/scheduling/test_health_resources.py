"""Run durations as a Prometheus histogram, and each job's last run's memory and CPU in health and metrics."""

from __future__ import annotations

from datetime import timedelta

import requests
from health_support import auth, make_settings, planner_of, serving
from prometheus_client.parser import text_string_to_metric_families
from store_support import T0, add_run

from shiol_lib.archive import folders as archive
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.store import open_store

RUN_ID = "20240701T090000Z-abcdef"


def test_durations_are_a_histogram_by_job_and_resources_come_from_the_manifest(tmp_path):
    settings = make_settings(tmp_path)
    store = open_store(settings.db_path, lock_timeout_s=5)
    for n, minutes in enumerate([0.05, 1.0, 3.0, 40.0]):
        add_run(store, f"pipeline-{n}", "pipeline", "success" if n else "failed", hour=n, minutes=minutes)
    add_run(store, RUN_ID, "evaluation", "success", hour=5, minutes=0.2)
    add_run(store, "evaluation-refused", "evaluation", "refused", hour=6, minutes=0)
    folder = settings.runs_dir / "evaluation" / "2024-07-01" / RUN_ID
    folder.mkdir(parents=True)
    manifest = Manifest(
        run_id=RUN_ID,
        job="evaluation",
        trigger="on-time",
        status="success",
        started_at=T0 + timedelta(hours=5),
        steps=[
            StepRecord(
                "evaluate_predictions", "70_evaluate_predictions.ipynb", status="success", peak_rss_mb=300.5, cpu_s=4.25
            )
        ],
    )
    archive.write_manifest(folder, manifest)
    with serving(settings, lambda: store, planner_of(store)) as url:
        text = requests.get(f"{url}/metrics", headers=auth(), timeout=10).text
        health = requests.get(f"{url}/api/v1/scheduler/health", headers=auth(), timeout=10).json()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    histogram = families["shiol_job_run_duration_seconds"]
    assert histogram.type == "histogram"
    samples = {(s.name, s.labels.get("job"), s.labels.get("le")): s.value for s in histogram.samples}
    assert samples[("shiol_job_run_duration_seconds_count", "pipeline", None)] == 4
    assert samples[("shiol_job_run_duration_seconds_sum", "pipeline", None)] == (0.05 + 1 + 3 + 40) * 60
    assert samples[("shiol_job_run_duration_seconds_bucket", "pipeline", "5.0")] == 1
    assert samples[("shiol_job_run_duration_seconds_bucket", "pipeline", "300.0")] == 3
    assert samples[("shiol_job_run_duration_seconds_bucket", "pipeline", "+Inf")] == 4
    assert samples[("shiol_job_run_duration_seconds_count", "evaluation", None)] == 1  # the refused start: not a run
    peak = {s.labels["job"]: s.value for s in families["shiol_job_last_run_peak_rss_bytes"].samples}
    assert peak == {"evaluation": 300.5 * 1024 * 1024}
    assert {s.labels["job"]: s.value for s in families["shiol_job_last_run_cpu_seconds"].samples} == {
        "evaluation": 4.25
    }
    resources = health["jobs"]["evaluation"]["last_finished_resources"]
    assert resources["peak_rss_mb"] == 300.5 and resources["cpu_s"] == 4.25
    assert resources["steps"]["evaluate_predictions"] == {"peak_rss_mb": 300.5, "cpu_s": 4.25}
    assert health["jobs"]["pipeline"]["last_finished_resources"] is None  # no manifest for that run
