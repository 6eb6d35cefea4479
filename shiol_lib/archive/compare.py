"""Comparing runs by their manifests: whether a rerun reproduced the outputs, and what two runs differ in."""

from __future__ import annotations

from typing import Any

from shiol_lib.archive.manifest import Manifest

# What the data update found depends on what the sources had at the time, and where research tasks ran
# depends on the cluster: shown, never compared.
NOT_REPRODUCIBLE = frozenset({
    "artifact:metrics.update_data", "artifact:metrics.research_backtest_execution",
    "artifact:metrics.research_power_execution",
})


def compare_outputs(original: Manifest, repeat: Manifest) -> dict[str, Any]:
    """Which output hashes (and the input data hash) agree between two manifests."""
    keys = sorted(set(original.outputs) | set(repeat.outputs))
    outputs = {
        key: {"original": original.outputs.get(key), "rerun": repeat.outputs.get(key),
              "compared": key not in NOT_REPRODUCIBLE}
        for key in keys
    }
    mismatched = [k for k, v in outputs.items() if v["compared"] and v["original"] != v["rerun"]]
    same_input = original.input.get("draws_sha256") == repeat.input.get("draws_sha256")
    return {
        "identical": not mismatched and same_input and bool(keys),
        "input_identical": same_input,
        "mismatched": mismatched,
        "outputs": outputs,
    }


def diff_manifests(first: Manifest, second: Manifest) -> list[dict[str, Any]]:
    """Differences that matter between two runs: parameters, data, code, outputs, metrics."""
    def flat(manifest: Manifest) -> dict[str, Any]:
        data = manifest.to_dict()
        items: dict[str, Any] = {
            "job": data["job"],
            "seed": data["seed"],
            "target_draw_date": data["target_draw_date"],
            "history_end": data["history_end"],
            "input.draws_sha256": manifest.input.get("draws_sha256"),
            "code.git_commit": manifest.code.get("git_commit"),
            "code.git_dirty": manifest.code.get("git_dirty"),
            "status": data["status"],
        }
        for step in manifest.steps:
            for key, value in (step.parameters or {}).items():
                if key not in ("run_id",):
                    items[f"parameters.{step.name}.{key}"] = value
        for key, value in manifest.outputs.items():
            items[f"outputs.{key}"] = value
        for step_name, metrics in manifest.metrics.items():
            for key, value in (metrics.items() if isinstance(metrics, dict) else []):
                items[f"metrics.{step_name}.{key}"] = value
        return items

    a, b = flat(first), flat(second)
    return [
        {"field": key, "first": a.get(key), "second": b.get(key)}
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
