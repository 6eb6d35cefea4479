"""The package's layers, enforced: every import inside ``shiol_lib`` (and the app file) points one way.

A plain ``ast`` walk over the source files, so a wrong-way import fails here with its file, line and the
rule it breaks, whether or not the import would run (imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shiol_lib"
APP = PACKAGE.parent / "schedules.py"

# What each part of the package may import of the workbench (besides itself). `errors`, `settings` and
# `logs` (logging set-up, called by entry points only) are the shared leaves; the layers follow the data
# flow: domain <- ingest, store <- analysis <- steps, and on the host side execution, archive, reports, jobs and
# scheduling, which never see the analysis or the steps.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "settings": frozenset({"errors"}),
    "logs": frozenset({"settings", "errors"}),
    "domain": frozenset({"errors"}),
    "store": frozenset({"domain", "errors"}),
    "ingest": frozenset({"domain", "store", "errors", "settings"}),
    "analysis": frozenset({"domain", "errors"}),
    "steps": frozenset({"analysis", "ingest", "store", "domain", "errors", "settings"}),
    "archive": frozenset({"domain", "errors"}),
    # reports: a step's HTML is rendered where it ran (reports/report.py)
    "execution": frozenset({"reports", "domain", "settings", "errors"}),
    "reports": frozenset({"archive", "domain", "store", "settings", "errors"}),
    # logs: the job process's entry
    "jobs": frozenset({"execution", "archive", "reports", "domain", "store", "errors", "settings", "logs"}),
    "scheduling": frozenset({"jobs", "archive", "reports", "execution", "domain", "store", "errors", "settings",
                             "logs"}),
    "cli": frozenset({"ingest", "store", "domain", "archive", "execution", "jobs", "reports", "scheduling", "errors",
                      "settings", "logs"}),
    "__init__": frozenset(),
    "schedules": frozenset({"scheduling", "domain", "errors", "settings"}),
}


def part_of(module: str) -> str:
    """The layer of a dotted module name inside the package (``shiol_lib.store.runs`` -> ``store``)."""
    parts = module.split(".")
    if parts[0] != "shiol_lib":
        return parts[0]
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """The dotted name of a source file (``schedules`` for the app file)."""
    if path == APP:
        return "schedules"
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every import of ``shiol_lib`` in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path, package).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "shiol_lib":  # `from shiol_lib import steps` names the module it imports
                found += [(node.lineno, f"shiol_lib.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "shiol_lib" or name.startswith("shiol_lib.")]


def violations(files: list[Path], package: Path = PACKAGE) -> list[str]:
    """Every import that breaks a layer rule, as ``file:line imports X: rule``."""
    problems = []
    for path in files:
        source = part_of(module_name(path, package)) if path != APP else "schedules"
        allowed = ALLOWED.get(source)
        if allowed is None:
            problems.append(f"{path}: part {source!r} has no layer rule; add it to ALLOWED in {__file__}")
            continue
        for line, name in imported_modules(path, package):
            target = part_of(name)
            if target == source or target in allowed or target == "__init__" and name == "shiol_lib":
                continue
            rule = (f"'{source}' may import only {', '.join(sorted(allowed)) or 'nothing of the workbench'}"
                    if target != "cli" else "nothing imports 'cli'")
            problems.append(f"{path.relative_to(package.parent)}:{line} imports {name}: {rule}")
    return problems


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + [APP]


def test_every_part_of_the_package_has_a_rule() -> None:
    parts = {part_of(module_name(p)) for p in source_files() if p != APP}
    assert parts <= set(ALLOWED), f"parts without a layer rule: {sorted(parts - set(ALLOWED))}"
    assert {"domain", "ingest", "store", "analysis", "execution", "archive", "reports", "jobs", "scheduling", "cli",
            "steps"} <= parts


def test_imports_follow_the_layers() -> None:
    problems = violations(source_files())
    assert not problems, "wrong-way imports:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("where", "line", "rule"),
    [
        ("analysis/bad.py", "from shiol_lib.store import open_store", "'analysis' may import only domain, errors"),
        ("scheduling/bad.py", "from shiol_lib.analysis.model import fit_model", "'scheduling' may import only"),
        ("jobs/bad.py", "from shiol_lib import steps", "'jobs' may import only"),
        ("domain/bad.py", "import shiol_lib.ingest.records", "'domain' may import only errors"),
        ("store/bad.py", "from ..archive import folders", "'store' may import only domain, errors"),
        ("steps_helper/bad.py", "from shiol_lib.cli.main import main", "has no layer rule"),
        ("ingest/bad.py", "def f():\n    from shiol_lib.cli import runs", "nothing imports 'cli'"),
    ],
)
def test_a_wrong_way_import_is_named_with_its_rule(tmp_path: Path, where: str, line: str, rule: str) -> None:
    fake = tmp_path / "shiol_lib"
    bad = fake / where
    bad.parent.mkdir(parents=True)
    bad.write_text(f'"""A module that imports the wrong way."""\n{line}\n', encoding="utf-8")
    problems = violations([bad], fake)
    assert len(problems) == 1, problems
    assert rule in problems[0]
    if "no layer rule" not in rule:
        assert f"{where}:" in problems[0] and problems[0].split(" imports ")[1].startswith("shiol_lib.")


def test_the_real_tree_has_no_import_of_cli_outside_it() -> None:
    importers = [
        (path, name) for path in source_files() if part_of(module_name(path)) != "cli"
        for _, name in imported_modules(path) if part_of(name) == "cli"
    ]
    assert importers == []


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}, f"split these modules (one responsibility each, a few hundred lines): {long}"
