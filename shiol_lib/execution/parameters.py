"""A notebook's parameters: what its ``parameters`` cell declares, and a check of the values to inject.

Papermill only warns about an unknown parameter or a missing ``parameters`` tag; the runner refuses
both here, before anything runs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiol_lib.errors import ParameterError, RunnerError


def load_notebook_tools() -> None:
    """Import nbformat and papermill, without the IRI grammars jsonschema would build on the way.

    nbformat imports jsonschema, and jsonschema imports ``rfc3987_syntax`` when it is installed (it is:
    jupyter-events asks for ``jsonschema[format-nongpl]``), which compiles some 40 Lark grammars at import:
    1.2-3 s of CPU in every process that reads or runs a notebook, a job's largest fixed cost. No notebook
    schema checks an ``iri`` format, so the first import here goes without those checks (the module can
    still be imported by name afterwards). Later calls, or a process that imported jsonschema already,
    change nothing.
    """
    if "jsonschema" not in sys.modules and "rfc3987_syntax" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # an import of it raises ImportError
        try:
            import jsonschema  # type: ignore[import-untyped]  # noqa: F401 - imported once, for the reason above
        finally:
            del sys.modules["rfc3987_syntax"]
    import nbformat  # noqa: F401
    import papermill  # noqa: F401


@dataclass(frozen=True)
class NotebookParameter:
    """One parameter declared in a notebook's ``parameters`` cell (``name: type = default  # help``)."""

    name: str
    type_name: str
    default: str
    help: str

    @property
    def required(self) -> bool:
        """A typed parameter whose default is ``None`` must be given."""
        return self.default == "None" and self.type_name not in ("None", "") and "Optional" not in self.type_name


def read_parameters(notebook: Path) -> dict[str, NotebookParameter]:
    """The parameters a notebook declares; refuses a notebook without a ``parameters`` cell.

    Read once per version of the file (its path, size and modification time): a job checks each step's
    parameters before it opens the run and again as the step starts.
    """
    notebook = Path(notebook)
    try:
        stat = notebook.stat()
    except OSError:
        stat = None
    if stat is None or not notebook.is_file():
        raise RunnerError(f"notebook {notebook} does not exist")
    return dict(_read_parameters(notebook.absolute(), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _read_parameters(notebook: Path, size: int, mtime_ns: int) -> dict[str, NotebookParameter]:
    """:func:`read_parameters` of one version of the file (``size`` and ``mtime_ns`` key the cache)."""
    load_notebook_tools()
    import nbformat
    import papermill

    nb = nbformat.read(notebook, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise RunnerError(
            f"notebook {notebook.name} has {len(tagged)} cells tagged 'parameters'; it needs exactly one "
            "(in JupyterLab: select the cell, open the property inspector, add the tag 'parameters')"
        )
    declared = papermill.inspect_notebook(str(notebook))
    return {
        name: NotebookParameter(name, str(p["inferred_type_name"]), str(p["default"]), str(p["help"]))
        for name, p in declared.items()
    }


def check_parameters(notebook: Path, values: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse unknown names, missing required ones and wrong types; return the values to inject."""
    declared = read_parameters(notebook)
    problems = [f"unknown parameter {name!r}" for name in values if name not in declared]
    for name, param in declared.items():
        if name not in values:
            if param.required:
                problems.append(f"missing required parameter {name!r} ({param.type_name})")
            continue
        if not _type_matches(param.type_name, values[name]):
            problems.append(
                f"parameter {name!r} wants {param.type_name}, got {type(values[name]).__name__} {values[name]!r}"
            )
    if problems:
        names = ", ".join(f"{p.name}: {p.type_name}" for p in declared.values())
        raise ParameterError(f"{Path(notebook).name}: " + "; ".join(problems) + f" (declared: {names})", problems)
    return dict(values)


def _type_matches(type_name: str, value: Any) -> bool:
    name = type_name.replace(" ", "")
    if name.startswith("Optional[") or name.endswith("|None"):
        if value is None:
            return True
        name = name.removeprefix("Optional[").removesuffix("]").removesuffix("|None")
    checks = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
    }
    check = checks.get(name)
    return True if check is None else check(value)  # untyped parameters accept anything
