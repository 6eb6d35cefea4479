"""Comparing runs by their manifests: whether a rerun reproduced the outputs, and what two runs differ in."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any

from shiol_lib.archive.hashing import notebook_outputs_sha
from shiol_lib.archive.manifest import Manifest
from shiol_lib.domain.environments import compare_packages, split_entry
from shiol_lib.domain.runs import RunStatus

# What the data update found depends on what the sources had at the time, and where research tasks ran
# depends on the cluster: shown, never compared.
NOT_REPRODUCIBLE = frozenset(
    {
        "artifact:metrics.update_data",
        "artifact:metrics.research_backtest_execution",
        "artifact:metrics.research_power_execution",
    }
)


@dataclass(frozen=True)
class OutputComparison:
    """One output's hash in the original run and in the rerun, and whether it is compared at all."""

    original: str | None
    rerun: str | None
    compared: bool

    @property
    def same(self) -> bool:
        """True when both runs recorded the same hash."""
        return self.original == self.rerun

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``original``, ``rerun``, ``compared``."""
        return {"original": self.original, "rerun": self.rerun, "compared": self.compared}


@dataclass(frozen=True)
class Comparison:
    """Whether a rerun reproduced the original run's outputs and input data."""

    identical: bool  # every compared output and the input data agree (and there were outputs)
    input_identical: bool
    mismatched: tuple[str, ...]  # compared outputs whose hashes differ, sorted
    outputs: Mapping[str, OutputComparison]  # every output of either run, sorted by name

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``shiol rerun --json`` prints (keys in this order)."""
        return {
            "identical": self.identical,
            "input_identical": self.input_identical,
            "mismatched": list(self.mismatched),
            "outputs": {key: pair.to_dict() for key, pair in self.outputs.items()},
        }


@dataclass(frozen=True)
class RerunResult:
    """A rerun: the new run (id, status, folder), the run it repeated, and how their outputs compare."""

    run_id: str
    rerun_of: str
    status: RunStatus
    directory: Path
    comparison: Comparison

    def to_json(self) -> str:
        """The report ``shiol rerun --json`` prints."""
        return json.dumps(
            {
                "run_id": self.run_id,
                "rerun_of": self.rerun_of,
                "status": self.status,
                "directory": str(self.directory),
                **self.comparison.to_dict(),
            },
            indent=2,
        )


def compare_outputs(original: Manifest, repeat: Manifest, *, folders: tuple[Path, Path] | None = None) -> Comparison:
    """Which output hashes (and the input data hash) agree between two manifests.

    Two runs that stored no output (an analyst's notebook that writes nothing to the store) are compared,
    given their ``folders``, by what each step's executed notebook showed (``notebook:<step>``: its cell
    outputs, each run's own id masked; see :func:`~shiol_lib.archive.hashing.notebook_outputs_sha`).
    """
    first, second = dict(original.outputs), dict(repeat.outputs)
    if folders is not None and not first and not second:
        first, second = _notebook_outputs(original, folders[0]), _notebook_outputs(repeat, folders[1])
    outputs = {
        key: OutputComparison(first.get(key), second.get(key), key not in NOT_REPRODUCIBLE)
        for key in sorted(set(first) | set(second))
    }
    mismatched = tuple(k for k, pair in outputs.items() if pair.compared and not pair.same)
    same_input = original.input.get("draws_sha256") == repeat.input.get("draws_sha256")
    return Comparison(
        identical=not mismatched and same_input and bool(outputs),
        input_identical=same_input,
        mismatched=mismatched,
        outputs=MappingProxyType(outputs),
    )


def _notebook_outputs(manifest: Manifest, folder: Path) -> dict[str, str]:
    """``notebook:<step>`` -> the hash of what the step's executed notebook in ``folder`` showed (when readable)."""
    hashes = {}
    for step in manifest.steps:
        digest = notebook_outputs_sha(folder / f"{PurePath(step.notebook).stem}.ipynb", masked=(manifest.run_id,))
        if digest is not None:
            hashes[f"notebook:{step.name}"] = digest
    return hashes


@dataclass(frozen=True)
class Difference:
    """One field two runs disagree on (``None`` where a run has no such field)."""

    field: str
    first: Any
    second: Any

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``shiol runs diff --json`` prints: ``field``, ``first``, ``second``."""
        return {"field": self.field, "first": self.first, "second": self.second}


def diff_manifests(
    first: Manifest, second: Manifest, *, packages: Callable[[str], Sequence[str] | None] | None = None
) -> list[Difference]:
    """Differences that matter between two runs: parameters, data, code, environment, outputs, metrics.

    ``packages`` looks up the ``name==version`` list of a package hash (the store keeps them): when the
    two runs' hashes differ, each differing package is a ``packages.NAME`` difference (None: absent).
    """

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
            "environment.python": manifest.environment.get("python"),
            "environment.kernel": (manifest.environment.get("kernel") or {}).get("interpreter"),
            "environment.packages_sha256": manifest.environment.get("packages_sha256"),
        }
        for step in manifest.steps:
            for key, value in (step.parameters or {}).items():
                if key not in ("run_id",):
                    items[f"parameters.{step.name}.{key}"] = value
        for key, value in manifest.outputs.items():
            items[f"outputs.{key}"] = value
        for step_name, metrics in manifest.metrics.items():
            for key, value in metrics.items() if isinstance(metrics, dict) else []:
                items[f"metrics.{step_name}.{key}"] = value
        return items

    a, b = flat(first), flat(second)
    found = [Difference(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return found + _package_differences(a["environment.packages_sha256"], b["environment.packages_sha256"], packages)


def _package_differences(
    first: str | None, second: str | None, packages: Callable[[str], Sequence[str] | None] | None
) -> list[Difference]:
    """One difference per package whose version differs between the two hashes' lists (``None``: absent)."""
    if packages is None or not first or not second or first == second:
        return []
    listed_a, listed_b = packages(first), packages(second)
    if listed_a is None or listed_b is None:
        return []
    drift = compare_packages(listed_a, listed_b, previous_sha=first)
    items = [Difference(f"packages.{name}", before, after) for name, before, after in drift.changed]
    items += [Difference(f"packages.{name}", None, version) for name, version in map(split_entry, drift.added)]
    items += [Difference(f"packages.{name}", version, None) for name, version in map(split_entry, drift.removed)]
    return sorted(items, key=lambda item: item.field)
