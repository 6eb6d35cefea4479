"""Comparing runs by their manifests: whether a rerun reproduced the outputs, and what two runs differ in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What the data update found depends on what the sources had at the time: shown, never compared.
NOT_REPRODUCIBLE = frozenset({"artifact:metrics.update_data"})


def compare_outputs(original: Mapping[str, Any], repeat: Mapping[str, Any]) -> dict[str, Any]:
    """Which output hashes (and the input data hash) agree between two manifests."""
    keys = sorted(set(original.get("outputs", {})) | set(repeat.get("outputs", {})))
    outputs = {
        key: {"original": original.get("outputs", {}).get(key), "rerun": repeat.get("outputs", {}).get(key),
              "compared": key not in NOT_REPRODUCIBLE}
        for key in keys
    }
    mismatched = [k for k, v in outputs.items() if v["compared"] and v["original"] != v["rerun"]]
    same_input = original.get("input", {}).get("draws_sha256") == repeat.get("input", {}).get("draws_sha256")
    return {
        "identical": not mismatched and same_input and bool(keys),
        "input_identical": same_input,
        "mismatched": mismatched,
        "outputs": outputs,
    }


def diff_manifests(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Differences that matter between two runs: parameters, data, code, outputs, metrics."""
    def flat(manifest: Mapping[str, Any]) -> dict[str, Any]:
        items: dict[str, Any] = {
            "job": manifest.get("job"),
            "seed": manifest.get("seed"),
            "target_draw_date": manifest.get("target_draw_date"),
            "history_end": manifest.get("history_end"),
            "input.draws_sha256": manifest.get("input", {}).get("draws_sha256"),
            "code.git_commit": manifest.get("code", {}).get("git_commit"),
            "code.git_dirty": manifest.get("code", {}).get("git_dirty"),
            "status": manifest.get("status"),
        }
        for step in manifest.get("steps", []):
            for key, value in (step.get("parameters") or {}).items():
                if key not in ("run_id",):
                    items[f"parameters.{step['name']}.{key}"] = value
        for key, value in manifest.get("outputs", {}).items():
            items[f"outputs.{key}"] = value
        for step, metrics in manifest.get("metrics", {}).items():
            for key, value in metrics.items():
                items[f"metrics.{step}.{key}"] = value
        return items

    a, b = flat(first), flat(second)
    return [
        {"field": key, "first": a.get(key), "second": b.get(key)}
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]
