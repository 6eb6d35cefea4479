"""Execute one notebook with papermill in a fresh kernel of its own, and always keep what it produced.

:func:`execute_notebook` walks the stages in order: check the parameters against the notebook's
``parameters`` cell -> run it with papermill's Python API in this process, in a kernel of its own
(:mod:`shiol_lib.execution.kernels`: the step's environment and working directory; a whole-run timeout
kills the kernel and its children) -> find the failing cell, if any -> render the executed notebook to
HTML in-process. The executed notebook and its HTML are written even when a cell fails or the run
times out (the partial notebook papermill saved after each cell).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import nbformat
import papermill

from shiol_lib.errors import ParameterError, RunnerError
from shiol_lib.execution.engine import ENGINE_NAME
from shiol_lib.execution.kernels import KernelPool, StepKernel
from shiol_lib.execution.resources import watch_process, watching
from shiol_lib.jobs.catalog import KERNEL_NAME
from shiol_lib.jobs.liveness import Interrupted
from shiol_lib.settings import snapshot_path_for

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30 * 60
SCRATCH_STORE = "scratch-store.duckdb"  # a rerun command's copy of the store


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
    peak_rss_mb: float | None = None  # of the kernel's process tree (the kernel and what its cells started)
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


def rerun_command(notebook: Path, parameters: Mapping[str, Any], *, cwd: Path, runs_dir: Path, run_id: str) -> str:
    """A shell line that re-executes one step with its recorded parameters into a new folder.

    The output goes to ``<runs>/reruns/<run_id>/<UTC timestamp>/``, never over an archived file; a step
    with a store runs on a copy of its snapshot there (``-r db_path`` last: no added ``-p`` overrides
    it), so nothing it writes under the archived run's id reaches the live store.
    """
    folder = f"{shlex.quote(str(Path(runs_dir).resolve() / 'reruns' / run_id))}/$(date -u +%Y%m%dT%H%M%SZ)"
    command = [shlex.quote(part) for part in papermill_command(notebook, Path("OUTPUT"), parameters, cwd=cwd)]
    command[2] = f'"$out"/{shlex.quote(Path(notebook).name)}'
    line = f'out={folder} && mkdir -p "$out" && '
    if parameters.get("db_path"):
        live = Path(cwd) / Path(str(parameters["db_path"])).expanduser()  # an absolute path stays itself
        line += f'cp {shlex.quote(str(snapshot_path_for(live)))} "$out"/{SCRATCH_STORE} && '
        command += ["-r", "db_path", f'"$out"/{SCRATCH_STORE}']
    return line + " ".join(command)


def execute_notebook(
    notebook: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    memory_mb: int = 0,
    kernels: KernelPool | None = None,
    ahead: bool = False,
    progress: bool = False,
    render: bool = True,
) -> NotebookResult:
    """Run ``notebook`` to ``output`` (``.ipynb``) and render ``output.with_suffix('.html')``.

    ``env`` is the environment of the step's kernel (default: this process's), ``cwd`` its working
    directory. ``memory_mb`` (0: none) is the ceiling of the kernel tree's resident memory: passing it
    stops the kernel and the step ends ``failed`` with error class ``memory``
    (:mod:`shiol_lib.execution.resources`). ``kernels`` hands out the kernel (a job's steps share one
    pool; with ``ahead`` it starts the next step's kernel now); without it a fresh kernel is started
    and stopped here. ``progress`` shows papermill's per-cell progress bar on stderr. With ``render``
    false an executed notebook's report is left to the caller (``result.html`` is where it goes; the
    job renders it once, with the run's title and status).
    """
    notebook, output = Path(notebook).resolve(), Path(output).resolve()
    values = check_parameters(notebook, parameters)
    cwd = Path(cwd).resolve() if cwd else notebook.parent
    partial = output.with_name(output.name + ".partial")
    log_path = output.with_suffix(".log")
    env = dict(os.environ) if env is None else dict(env)
    started = datetime.now(UTC)
    with contextlib.ExitStack() as stack:
        pool = kernels if kernels is not None else stack.enter_context(KernelPool())
        try:
            with watching(memory_mb) as usage:
                status, error, error_class = _run_papermill(notebook, partial, values, log_path, timeout_s,
                                                            pool.take(env, cwd, ahead=ahead), progress)
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
        result.html = render_html(nb, output.with_suffix(".html")) if render else output.with_suffix(".html")
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


def _run_papermill(notebook: Path, partial: Path, values: Mapping[str, Any], log_path: Path, timeout_s: float,
                   kernel: StepKernel, progress: bool) -> tuple[str, str | None, str | None]:
    """Execute the notebook in ``kernel`` with papermill's API; on timeout kill the kernel and its children.

    The step's log gets papermill's messages, the cells' stdout and stderr, and the kernel's own output.
    The kernel is stopped on every path.
    """
    from nbclient.exceptions import DeadKernelError

    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        kernel.kill()

    timer = threading.Timer(max(0.0, timeout_s), expire)
    timer.daemon = True
    watch_process(kernel.pid)  # peak memory and CPU of the kernel's tree; the memory ceiling (execution/resources.py)
    with open(log_path, "w", encoding="utf-8") as log_file, _papermill_log(log_file), warnings.catch_warnings():
        timer.start()
        try:
            warnings.filterwarnings("ignore", message="The specified file .* does not end in", category=UserWarning)
            papermill.execute_notebook(
                str(notebook), str(partial), dict(values), engine_name=ENGINE_NAME, kernel_name=KERNEL_NAME,
                km=kernel.manager, progress_bar=progress, stdout_file=log_file, stderr_file=log_file,
                start_timeout=int(max(60.0, timeout_s)) + 1,
            )
            outcome: tuple[str, str | None, str | None] = ("success", None, None)
        except Interrupted:  # SIGTERM: the job records the run interrupted (the kernel is stopped below)
            raise
        except Exception as err:  # noqa: BLE001 - classified below; the notebook says which cell raised
            if timed_out.is_set():
                outcome = ("timeout", f"the notebook exceeded its {timeout_s:g} s wall-clock limit; kernel killed",
                           "timeout")
            elif isinstance(err, DeadKernelError) or not kernel.alive():
                outcome = ("failed", "the kernel died during execution", "kernel death")
            else:
                outcome = ("failed", f"papermill: {type(err).__name__}: {_last_line(str(err))}", "papermill")
            log_file.write(f"\n{outcome[0]}: {outcome[1]}\n")
        finally:  # interrupted (SIGTERM, Ctrl-C) too: never leave a kernel behind
            timer.cancel()
            kernel.stop(reap=False)  # its watchdog exits by itself; the pool reaps it when it closes
            kernel_output = kernel.read_log()
            if kernel_output.strip():
                log_file.write("\n--- kernel output ---\n" + kernel_output)
    return outcome


@contextlib.contextmanager
def _papermill_log(log_file: TextIO) -> Iterator[None]:
    """Papermill's (and nbclient's) log records go to the step's log file only, while the block lasts."""
    logger = logging.getLogger("papermill")
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])  # setLevel, not an assignment: it clears the loggers' cached levels
        logger.propagate = saved[1]


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
    """The cell that was running when the step was stopped, else the last one started.

    :mod:`shiol_lib.execution.engine` keeps a stopped cell ``running``.
    """
    started = None
    for index, cell in _source_cells(nb):
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("status") == "running":
            return index
        if meta.get("start_time"):
            started = index
    return started


def render_html(nb: nbformat.NotebookNode, path: Path, **metadata: Any) -> Path:
    """Render an executed notebook to its self-contained HTML report (:func:`report.render_report`).

    ``metadata`` (``run_id``, ``job``, ``target_draw_date``, ``status``, ``error``) goes to the title and
    the error block.
    """
    from shiol_lib.reports.report import render_report

    return render_report(nb, path, **metadata)
