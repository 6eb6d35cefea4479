"""What a run's kernel ran on, as values: :class:`EnvironmentRecord` and the :class:`Drift` between two.

A record names the Python version, the kernel spec (name, argv, resolved interpreter) and the sorted
``name==version`` list of the interpreter's installed distributions, identified by its SHA-256
(:func:`packages_sha256`). The store keeps each distinct list once; a run keeps only its hash.
Capturing one is :func:`shiol_lib.execution.environment.capture`; this module does no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def packages_sha256(packages: Sequence[str]) -> str:
    """Hex SHA-256 of a sorted ``name==version`` list, one entry per line (the list's identity)."""
    return hashlib.sha256("\n".join(packages).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EnvironmentRecord:
    """The Python version, kernel spec and installed distributions a run's kernel used."""

    python: str  # the kernel interpreter's version, e.g. "3.11.9"
    kernel_name: str
    kernel_argv: tuple[str, ...]
    interpreter: str  # the absolute path of the interpreter the kernel spec starts
    packages: tuple[str, ...]  # sorted "name==version", names normalized (PEP 503)
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "packages", tuple(sorted(self.packages)))
        object.__setattr__(self, "sha256", packages_sha256(self.packages))

    def manifest_fields(self, drift: Drift | None = None) -> dict[str, Any]:
        """What a manifest's ``environment`` records of it: never the list, only its hash and size.

        A ``drift`` that found differences goes in as ``drift`` (:meth:`Drift.to_dict`).
        """
        fields: dict[str, Any] = {
            "python": self.python,
            "kernel": {"name": self.kernel_name, "argv": list(self.kernel_argv), "interpreter": self.interpreter},
            "packages_sha256": self.sha256,
            "packages_count": len(self.packages),
        }
        if drift:
            fields["drift"] = drift.to_dict()
        return fields


@dataclass(frozen=True)
class Drift:
    """How a package list differs from a previous one (``previous_sha`` None: nothing to compare with).

    ``added`` and ``removed`` are ``name==version`` entries; ``changed`` is (name, before, after).
    """

    previous_sha: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self, *, limit: int = 12) -> str:
        """The differing packages in words, e.g. ``numpy 1.26.4 -> 2.0.0, added rich==13.7.1``."""
        parts = [f"{name} {before} -> {after}" for name, before, after in self.changed]
        parts += [f"added {entry}" for entry in self.added] + [f"removed {entry}" for entry in self.removed]
        more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
        return ", ".join(parts[:limit]) + more if parts else "no package differs"

    def to_dict(self) -> dict[str, Any]:
        """A JSON form: ``previous_sha``, ``added``, ``removed``, ``changed`` ([name, before, after])."""
        return {
            "previous_sha": self.previous_sha,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [list(item) for item in self.changed],
        }


def split_entry(entry: str) -> tuple[str, str]:
    """``("numpy", "1.26.4")`` of ``"numpy==1.26.4"``."""
    name, _, version = entry.partition("==")
    return name, version


def compare_packages(previous: Iterable[str] | None, current: Iterable[str], *, previous_sha: str | None) -> Drift:
    """The :class:`Drift` from ``previous`` (None: unknown, no drift) to ``current``."""
    if previous is None:
        return Drift(previous_sha=None)
    before = dict(split_entry(e) for e in previous)
    after = dict(split_entry(e) for e in current)
    return Drift(
        previous_sha=previous_sha,
        added=tuple(f"{n}=={after[n]}" for n in sorted(after.keys() - before.keys())),
        removed=tuple(f"{n}=={before[n]}" for n in sorted(before.keys() - after.keys())),
        changed=tuple((n, before[n], after[n]) for n in sorted(before.keys() & after.keys()) if before[n] != after[n]),
    )
