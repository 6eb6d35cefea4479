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
    "scheduling": frozenset(
        {"jobs", "archive", "reports", "execution", "domain", "store", "errors", "settings", "logs"}
    ),
    "cli": frozenset(
        {
            "ingest",
            "store",
            "domain",
            "archive",
            "execution",
            "jobs",
            "reports",
            "scheduling",
            "errors",
            "settings",
            "logs",
            "lab",  # the JSON records the CLI prints and the Lab server answers (lab/records.py)
        }
    ),
    # the Jupyter Server extension: a top-level consumer like `cli` (handlers call the library)
    "lab": frozenset(
        {"store", "domain", "archive", "execution", "jobs", "reports", "scheduling", "errors", "settings", "logs"}
    ),
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
            rule = (
                f"'{source}' may import only {', '.join(sorted(allowed)) or 'nothing of the workbench'}"
                if target != "cli"
                else "nothing imports 'cli'"
            )
            problems.append(f"{path.relative_to(package.parent)}:{line} imports {name}: {rule}")
    return problems


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + [APP]


def test_every_part_of_the_package_has_a_rule() -> None:
    parts = {part_of(module_name(p)) for p in source_files() if p != APP}
    assert parts <= set(ALLOWED), f"parts without a layer rule: {sorted(parts - set(ALLOWED))}"
    assert {
        "domain",
        "ingest",
        "store",
        "analysis",
        "execution",
        "archive",
        "reports",
        "jobs",
        "scheduling",
        "cli",
        "steps",
    } <= parts


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
        (path, name)
        for path in source_files()
        if part_of(module_name(path)) != "cli"
        for _, name in imported_modules(path)
        if part_of(name) == "cli"
    ]
    assert importers == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}, f"split these modules (one responsibility each, a few hundred lines): {long}"


# Import cycles: between any two modules of the package, imports inside functions included; none is
# tolerated. Package folders: at most this many modules each (``__init__.py`` not counted), none excepted.
MAX_MODULES_PER_FOLDER = 12


def package_files(package: Path = PACKAGE) -> list[Path]:
    """Every source file of the package (the app file is not part of it: nothing imports it)."""
    return sorted(package.rglob("*.py"))


def import_graph(files: list[Path], package: Path = PACKAGE) -> dict[str, dict[str, str]]:
    """module -> {imported workbench module: ``file:line`` of the first such import}.

    ``from shiol_lib.x import y`` names the module ``shiol_lib.x.y`` when ``y`` is one of ``files``, else
    ``shiol_lib.x``; relative imports are resolved; imports inside functions count.
    """
    known = {module_name(p, package) for p in files}
    graph: dict[str, dict[str, str]] = {}
    for path in files:
        here = module_name(path, package)
        parts = here.split(".")
        base_parts = parts if path.name == "__init__.py" else parts[:-1]
        edges = graph.setdefault(here, {})
        where = str(path.relative_to(package.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                    origin = f"{base}.{node.module}" if node.module else base
                else:
                    origin = node.module or ""
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "shiol_lib" and target != here:
                    edges.setdefault(target, f"{where}:{node.lineno}")
    return graph


def _tangles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, {})):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _shortest_cycle(graph: dict[str, dict[str, str]], members: list[str]) -> list[str]:
    """A shortest cycle through the first of ``members`` (a tangle), as ``[a, b, ..., a]``."""
    start, inside = members[0], set(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph.get(node, {})):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ in inside and succ not in previous:
                    previous[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {members}")


def import_cycles(files: list[Path], package: Path = PACKAGE) -> list[tuple[frozenset[str], str]]:
    """Each tangle of modules that import each other, with one cycle named ``a -> b -> a (where...)``."""
    graph = import_graph(files, package)
    named = []
    for members in _tangles(graph):
        cycle = _shortest_cycle(graph, members)
        text = " -> ".join(cycle) + " (" + ", ".join(graph[a][b] for a, b in zip(cycle, cycle[1:])) + ")"
        if len(members) > len(cycle) - 1:
            text += f"; tangled with it: {', '.join(m for m in members if m not in cycle)}"
        named.append((frozenset(members), text))
    return named


def crowded_folders(package: Path = PACKAGE) -> dict[str, int]:
    """Package folders holding more than :data:`MAX_MODULES_PER_FOLDER` modules (``__init__.py`` not counted)."""
    counts = {
        str(init.parent.relative_to(package.parent)): sum(
            1 for p in init.parent.glob("*.py") if p.name != "__init__.py"
        )
        for init in sorted(package.rglob("__init__.py"))
    }
    return {folder: n for folder, n in counts.items() if n > MAX_MODULES_PER_FOLDER}


def test_the_real_tree_has_no_import_cycle() -> None:
    cycles = import_cycles(package_files())
    assert not cycles, "import cycles:\n" + "\n".join(text for _, text in cycles)


def _plant(root: Path, files: dict[str, str]) -> list[Path]:
    for where, body in files.items():
        path = root / "shiol_lib" / where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""A planted module."""\n{body}\n', encoding="utf-8")
    for folder in {p.parent for p in (root / "shiol_lib").rglob("*.py")} | {root / "shiol_lib"}:
        (folder / "__init__.py").touch()
    return sorted((root / "shiol_lib").rglob("*.py"))


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        pytest.param(
            {
                "archive/folders.py": "from shiol_lib.archive import ledger",
                "archive/ledger.py": "from . import verify",
                "archive/verify.py": "from shiol_lib.archive.folders import run_folder",
            },
            "shiol_lib.archive.folders -> shiol_lib.archive.ledger -> shiol_lib.archive.verify -> "
            "shiol_lib.archive.folders",
            id="three-modules-of-one-part",
        ),
        pytest.param(
            {
                "store/core.py": "import shiol_lib.domain.game",
                "domain/game.py": "def prizes():\n    from shiol_lib.store.core import Store\n    return Store",
            },
            "shiol_lib.domain.game -> shiol_lib.store.core -> shiol_lib.domain.game",
            id="function-level-import-between-parts",
        ),
        pytest.param(
            {
                "store/__init__.py": "from shiol_lib.store.core import Store",
                "store/core.py": "from ..store import schema\nclass Store: ...",
                "store/schema.py": "def f():\n    from shiol_lib.store import Store",
            },
            "shiol_lib.store -> shiol_lib.store.core -> shiol_lib.store.schema -> shiol_lib.store",
            id="through-a-package-init",
        ),
    ],
)
def test_a_planted_import_cycle_is_named(tmp_path: Path, files: dict[str, str], cycle: str) -> None:
    cycles = import_cycles(_plant(tmp_path, files), tmp_path / "shiol_lib")
    assert len(cycles) == 1, cycles
    assert cycles[0][1].startswith(cycle + " ("), cycles[0][1]


def test_importing_a_submodule_by_name_is_no_cycle_with_its_package(tmp_path: Path) -> None:
    # `from shiol_lib.store import schema` names store.schema, not the store package that imports core.
    files = {
        "store/__init__.py": "from shiol_lib.store.core import Store",
        "store/core.py": "from shiol_lib.store import schema\nclass Store: ...",
        "store/schema.py": "VERSION = 1",
    }
    planted = _plant(tmp_path, files)
    assert import_cycles(planted, tmp_path / "shiol_lib") == []
    graph = import_graph(planted, tmp_path / "shiol_lib")
    assert graph["shiol_lib.store.core"] == {"shiol_lib.store.schema": "shiol_lib/store/core.py:2"}


def test_no_package_folder_holds_more_than_twelve_modules() -> None:
    crowded = crowded_folders()
    assert not crowded, f"split these folders into parts of at most {MAX_MODULES_PER_FOLDER} modules: {crowded}"


def test_a_crowded_folder_is_named(tmp_path: Path) -> None:
    planted = {f"analysis/m{i:02d}.py": "" for i in range(MAX_MODULES_PER_FOLDER + 1)}
    _plant(tmp_path, planted | {f"store/m{i:02d}.py": "" for i in range(MAX_MODULES_PER_FOLDER)})
    assert crowded_folders(tmp_path / "shiol_lib") == {"shiol_lib/analysis": MAX_MODULES_PER_FOLDER + 1}
