"""Execute one notebook with papermill in a fresh child process, and always keep what it produced.

:func:`execute_notebook` walks the stages in order: check the parameters against the notebook's
``parameters`` cell -> run the plain papermill CLI in its own process (so a whole-run timeout can kill
it, its kernel and their children) -> find the failing cell, if any -> render the executed notebook
to HTML in-process. The executed notebook and its HTML are written even when a cell fails or the run
times out (the partial notebook papermill saved after each cell).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import papermill

from shiol_lib.errors import ParameterError, RunnerError
from shiol_lib.pipeline.catalog import KERNEL_NAME
from shiol_lib.pipeline.liveness import kill_process_tree
from shiol_lib.pipeline.resources import watch_process, watching
from shiol_lib.pipeline.watchdog import start_watchdog

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30 * 60


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


@dataclass
class NotebookResult:
    """What one notebook execution produced."""

    notebook: str
    output: Path
    html: Path | None
    status: str  # success | failed | timeout
    started_at: datetime
    finished_at: datetime
    parameters: dict[str, Any]
    command: list[str]
    error: str | None = None
    error_class: str | None = None  # cell error | kernel death | timeout | papermill
    failed_cell: int | None = None
    error_name: str | None = None  # the exception class a failing cell raised
    log_path: Path | None = None
    peak_rss_mb: float | None = None  # of the papermill process tree (papermill, kernel, their children)
    cpu_s: float | None = None

    @property
    def duration_s(self) -> float:
        """Wall-clock seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


def read_parameters(notebook: Path) -> dict[str, NotebookParameter]:
    """The parameters a notebook declares; refuses a notebook without a ``parameters`` cell."""
    notebook = Path(notebook)
    if not notebook.is_file():
        raise RunnerError(f"notebook {notebook} does not exist")
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
        raise ParameterError(
            f"{Path(notebook).name}: " + "; ".join(problems) + f" (declared: {names})", problems
        )
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


def papermill_executable() -> str:
    """This environment's papermill by absolute path (a bare ``papermill`` may not be on the PATH)."""
    candidate = Path(sys.executable).with_name("papermill")
    return str(candidate) if candidate.is_file() else "papermill"


def papermill_command(notebook: Path, output: Path, parameters: Mapping[str, Any], *, cwd: Path) -> list[str]:
    """The plain papermill CLI call that executes ``notebook`` with ``parameters``."""
    return [
        papermill_executable(), str(notebook), str(output),
        "-y", json.dumps(dict(parameters), sort_keys=True),
        "--cwd", str(cwd), "-k", KERNEL_NAME, "--no-progress-bar",
    ]


def format_command(command: list[str]) -> str:
    """A command line a person can paste into a shell."""
    return shlex.join(command)


def rerun_command(notebook: Path, parameters: Mapping[str, Any], *, cwd: Path, runs_dir: Path, run_id: str) -> str:
    """A shell line that re-executes one step with its recorded parameters into a new folder.

    The output goes to ``<runs>/reruns/<run_id>/<UTC timestamp>/``: a fresh folder each time it is
    pasted, never over an archived file.
    """
    folder = f"{shlex.quote(str(Path(runs_dir) / 'reruns' / run_id))}/$(date -u +%Y%m%dT%H%M%SZ)"
    output = f'"$out"/{shlex.quote(Path(notebook).name)}'
    command = papermill_command(notebook, Path("OUTPUT"), parameters, cwd=cwd)
    command = [shlex.quote(part) for part in command]
    command[2] = output
    return f'out={folder} && mkdir -p "$out" && ' + " ".join(command)


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    memory_mb: int = 0,
) -> NotebookResult:
    """Run ``notebook`` to ``output`` (``.ipynb``) and render ``output.with_suffix('.html')``.

    ``env`` is the environment of papermill and its kernel (default: this process's). ``memory_mb``
    (0: none) is the ceiling of the process tree's resident memory: passing it stops the kernel and the
    step ends ``failed`` with error class ``memory`` (:mod:`shiol_lib.pipeline.resources`).
    """
    notebook, output = Path(notebook), Path(output)
    values = check_parameters(notebook, parameters)
    cwd = Path(cwd) if cwd else notebook.parent
    partial = output.with_name(output.name + ".partial")
    log_path = output.with_suffix(".log")
    command = papermill_command(notebook, partial, values, cwd=cwd)
    started = datetime.now(UTC)
    try:
        with watching(memory_mb) as usage:
            status, error, error_class = _run_child(command, log_path, timeout_s, env)
    except BaseException:  # interrupted (SIGTERM): the archive still keeps what ran, rendered
        _keep_partial(partial, output)
        raise
    finished = datetime.now(UTC)
    result = NotebookResult(
        notebook=str(notebook), output=output, html=None, status=status, started_at=started,
        finished_at=finished, parameters=values,
        command=papermill_command(notebook, output, values, cwd=cwd), error=error,
        error_class=error_class, log_path=log_path,
    )
    executed = partial.exists()  # papermill saved the notebook at least once
    if executed:
        nb = nbformat.read(partial, as_version=4)
        cell_error = _failed_cell(nb)
        if cell_error is not None and status != "timeout":
            result.failed_cell, result.error_name, result.error = cell_error
            result.error_class = "cell error"
        elif status == "timeout":
            result.failed_cell = _running_cell(nb)
        os.replace(partial, output)
    elif status == "success":
        result.status, result.error, result.error_class = "failed", "papermill wrote no output notebook", "papermill"
    result.peak_rss_mb, result.cpu_s = usage.peak_rss_mb, usage.cpu_s
    if usage.exceeded:
        result.status, result.error_class, result.error = "failed", "memory", usage.message()
    if executed:
        result.html = render_html(nb, output.with_suffix(".html"))
    else:
        result.html = write_unexecuted_report(notebook, output, result.error or "the step did not run")
    return result


def _keep_partial(partial: Path, output: Path) -> None:
    """Move a partial notebook into place and render it; never masks the exception being handled."""
    with contextlib.suppress(Exception):
        if partial.exists():
            nb = nbformat.read(partial, as_version=4)
            os.replace(partial, output)
            render_html(nb, output.with_suffix(".html"))


def write_unexecuted_report(notebook: Path, output: Path, reason: str, **metadata: Any) -> Path:
    """The report of a step stopped before papermill saved anything: the source notebook, reason on top.

    Writes ``output`` (the unexecuted notebook with a banner cell) and its HTML; returns the HTML path.
    """
    nb = nbformat.read(notebook, as_version=4)
    banner = nbformat.v4.new_markdown_cell(
        f"**This step did not run to its first cell: {reason}.**\n\nBelow is the notebook as it would have "
        "run; no cell was executed.", metadata={"tags": ["shiol-unexecuted"]},
    )
    nb.cells.insert(0, banner)
    tmp = output.with_name(output.name + ".tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, output)
    return render_html(nb, output.with_suffix(".html"), **metadata)


def _run_child(command: list[str], log_path: Path, timeout_s: float,
               env: Mapping[str, str] | None) -> tuple[str, str | None, str | None]:
    """Run papermill in its own session; on timeout kill it, its kernel and their children."""
    argv = [sys.executable, "-m", "papermill", *command[1:]]
    with open(log_path, "w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(env) if env is not None else None,
                                preexec_fn=_die_with(os.getpid()))  # prctl must run in the child
        watchdog = start_watchdog(os.getpid(), proc.pid)  # the kernel and its children die with us too
        watch_process(proc)  # peak memory and CPU of the tree; the memory ceiling (pipeline/resources.py)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc.pid)
            proc.wait()
            return "timeout", f"the notebook exceeded its {timeout_s:g} s wall-clock limit; kernel killed", "timeout"
        except BaseException:  # interrupted (SIGTERM, Ctrl-C): never leave a kernel behind
            kill_process_tree(proc.pid)
            proc.wait()
            raise
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=10)
    if code == 0:
        return "success", None, None
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    if "DeadKernelError" in tail or "Kernel died" in tail:
        return "failed", "the kernel died during execution", "kernel death"
    return "failed", f"papermill exited with code {code}: {_last_line(tail)}", "papermill"


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    def arm() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    return arm


_PR_SET_PDEATHSIG = 1


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


_ADDED_BY_PAPERMILL = frozenset({"injected-parameters", "papermill-error-cell-tag"})


def _source_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    """Cells of an executed notebook with their index in the source notebook.

    Papermill's own injected-parameters cell and error banners are left out.
    """
    kept = [c for c in nb.cells if not _ADDED_BY_PAPERMILL & set(c.get("metadata", {}).get("tags", []))]
    return list(enumerate(kept))


def _failed_cell(nb: nbformat.NotebookNode) -> tuple[int, str, str] | None:
    """(source cell index, exception name, message) of the first cell that raised."""
    for index, cell in _source_cells(nb):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
                name = str(out.get("ename"))
                return index, name, f"cell {index} ({first_line!r}) raised {name}: {out.get('evalue')}"
    return None


def _running_cell(nb: nbformat.NotebookNode) -> int | None:
    for index, cell in _source_cells(nb):
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return index
    return None


def render_html(nb: nbformat.NotebookNode, path: Path, **metadata: Any) -> Path:
    """Render an executed notebook to its self-contained HTML report (:func:`report.render_report`).

    ``metadata`` (``run_id``, ``job``, ``target_draw_date``, ``status``, ``error``) goes to the title and
    the error block.
    """
    from shiol_lib.pipeline.report import render_report

    return render_report(nb, path, **metadata)
