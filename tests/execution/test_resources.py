"""Resource usage per step and run (peak RSS, CPU time) and the memory ceiling, with real processes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest

from shiol_lib.archive.manifest import Manifest
from shiol_lib.execution.resources import ResourceWatch, watch_process, watching
from shiol_lib.execution.runner import execute

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
HOLD = "import time; b = b'\\x01' * (150 * 1024 * 1024); x = sum(range(3_000_000)); time.sleep(1.5)"


def test_a_watch_measures_a_tree_peak_memory_and_cpu():
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {HOLD!r}])"]
    )
    watch = ResourceWatch(interval_s=0.1)
    watch.watch(proc)
    proc.wait(timeout=60)
    usage = watch.stop()
    assert usage.samples >= 3 and not usage.exceeded
    assert 150 < usage.peak_rss_mb < 400  # the grandchild's 150 MB is counted with its parents
    assert usage.cpu_s > 0.05


def test_watch_process_does_nothing_without_a_current_watch_and_fills_the_current_one():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    watch_process(proc)  # no watch: nothing happens
    proc.wait()
    with watching(0, interval_s=0.1) as usage:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
        watch_process(proc)
        proc.wait()
    assert usage.peak_rss_mb and usage.peak_rss_mb > 1


def test_a_tree_above_the_ceiling_is_killed():
    with watching(100, interval_s=0.1) as usage:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import subprocess, sys; subprocess.run([sys.executable, "
                f"'-c', {HOLD!r}]); import time; time.sleep(60)",
            ]
        )
        watch_process(proc)
        code = proc.wait(timeout=120)
    assert usage.exceeded and code == -9  # killed by the watch, not ended after its 60 s sleep
    assert "above the SHIOL_STEP_MEMORY_MB ceiling of 100 MB" in usage.message()


def test_manifests_without_resource_fields_still_read_and_new_ones_round_trip():
    old = {
        "schema": 2,
        "run_id": "20240701T000000Z-abcdef",
        "job": "pipeline",
        "trigger": "manual",
        "status": "success",
        "started_at": "2024-07-01T00:00:00+00:00",
        "steps": [{"name": "a", "notebook": "a.ipynb", "status": "success"}],
    }
    manifest = Manifest.from_dict(old)
    assert manifest.peak_rss_mb is None and manifest.cpu_s is None and manifest.steps[0].peak_rss_mb is None
    manifest.steps[0].peak_rss_mb, manifest.steps[0].cpu_s = 250.5, 3.5
    manifest.error_class = "memory"
    assert (manifest.peak_rss_mb, manifest.cpu_s) == (250.5, 3.5)  # the run's totals follow from its steps
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest and again.started_at == datetime(2024, 7, 1, tzinfo=UTC)


@pytest.mark.slow
def test_a_step_above_the_memory_ceiling_fails_cleanly_with_its_report(tmp_path):
    out = tmp_path / "allocates.ipynb"
    result = execute(
        NOTEBOOKS / "allocates_memory.ipynb", out, {"total_mb": 4000, "step_mb": 50}, memory_mb=450, timeout_s=600
    )
    assert result.status == "failed" and result.error_class == "memory", result.error
    assert "ceiling of 450 MB" in result.error
    assert 450 < result.peak_rss_mb < 1500  # stopped soon after passing it, far from the 4 GB asked for
    assert out.exists() and result.html.exists()  # the report is still written
    nb = nbformat.read(out, as_version=4)
    assert not any("holding" in "".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells)


@pytest.mark.slow
def test_a_step_under_the_ceiling_reports_its_peak_memory_and_cpu(tmp_path):
    result = execute(
        NOTEBOOKS / "allocates_memory.ipynb", tmp_path / "ok.ipynb", {"total_mb": 200}, memory_mb=4096, timeout_s=300
    )
    assert result.status == "success", result.error
    assert result.peak_rss_mb > 200 and result.cpu_s > 0.2
