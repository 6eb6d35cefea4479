"""Execute one notebook with papermill in a fresh kernel of its own, and always keep what it produced.

:func:`execute` walks the stages in order: check the parameters against the notebook's ``parameters``
cell -> run it with papermill's Python API in this process, in a kernel of its own
(:mod:`shiol_lib.execution.kernels`: the step's environment and working directory; a whole-run timeout
kills the kernel and its children) -> find the failing cell and the outcome the kernel reported, if
any -> render the executed notebook to HTML in-process, titled -> hand back a typed
:class:`~shiol_lib.execution.outcome.StepOutcome`. The executed notebook and its HTML are written even
when a cell fails or the run times out (the partial notebook papermill saved after each cell).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shlex
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from shiol_lib.domain.runs import ErrorClass, StepStatus
from shiol_lib.execution.channel import read_error_class
from shiol_lib.execution.kernels import KERNEL_NAME, KernelPool, StepKernel
from shiol_lib.execution.outcome import ReportTitle, StepOutcome, find_failed_cell, find_running_cell
from shiol_lib.execution.parameters import check_parameters, load_notebook_tools
from shiol_lib.execution.processes import Interrupted
from shiol_lib.execution.resources import watch_process, watching
from shiol_lib.execution.secrets import RedactingWriter, Redactor, redacting
from shiol_lib.settings import snapshot_path_for

if TYPE_CHECKING:
    import nbformat

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30 * 60
SCRATCH_STORE = "scratch-store.duckdb"  # a rerun command's copy of the store


def papermill_executable() -> str:
    """This environment's papermill by absolute path (a bare ``papermill`` may not be on the PATH)."""
    candidate = Path(sys.executable).with_name("papermill")
    return str(candidate) if candidate.is_file() else "papermill"


def papermill_command(notebook: Path, output: Path, parameters: Mapping[str, Any], *, cwd: Path) -> list[str]:
    """The plain papermill CLI call that executes ``notebook`` with ``parameters``."""
    return [
        papermill_executable(),
        str(notebook),
        str(output),
        "-y",
        json.dumps(dict(parameters), sort_keys=True),
        "--cwd",
        str(cwd),
        "-k",
        KERNEL_NAME,
        "--no-progress-bar",
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


def execute(
    notebook: Path,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    title: ReportTitle | None = None,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    timeout_error: str | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    memory_mb: int = 0,
    kernels: KernelPool | None = None,
    ahead: bool = False,
    progress: bool = False,
) -> StepOutcome:
    """Run ``notebook`` to ``output`` (``.ipynb``) and render ``output.with_suffix('.html')``.

    Args:
        notebook: The source notebook.
        output: Where the executed notebook goes (its HTML and log beside it).
        parameters: The values to inject (checked against the ``parameters`` cell first).
        title: What the report's title names (run, job, target drawing); the status is the outcome's.
        cwd: The kernel's working directory (default: the notebook's folder).
        timeout_s: The wall-clock limit; passing it kills the kernel and its children.
        timeout_error: The error a timeout records (default: names ``timeout_s``).
        env: The kernel's environment (default: this process's).
        secrets: Name -> value, added to the kernel's environment only; each value (of at least 4
            characters) is masked ``***`` in the notebook, HTML, log and error as they are written
            (:mod:`shiol_lib.execution.secrets`).
        memory_mb: Ceiling of the kernel tree's resident memory (0: none); passing it fails the step
            with error class ``memory`` (:mod:`shiol_lib.execution.resources`).
        kernels: Hands out the kernel (a job's steps share one pool; with ``ahead`` it starts the next
            step's kernel now); without it a fresh kernel is started and stopped here.
        ahead: Start the next step's kernel while this one runs.
        progress: Show papermill's per-cell progress bar on stderr.

    Returns:
        The step's :class:`StepOutcome`, its HTML rendered; with ``kernels`` and ``ahead`` the HTML is
        rendered on the pool's worker while the next step runs (:meth:`KernelPool.defer`), and the next
        step's :func:`execute` (or closing the pool) waits for it. A cell raising a
        :class:`~shiol_lib.errors.ShiolError` ends with the class's ``error_class`` (reported by the
        kernel, :mod:`shiol_lib.execution.channel`); ``waiting`` makes the step ``waiting``.
    """
    load_notebook_tools()
    import nbformat

    notebook, output = Path(notebook).resolve(), Path(output).resolve()
    values = check_parameters(notebook, parameters)
    cwd = Path(cwd).resolve() if cwd else notebook.parent
    title = title or ReportTitle()
    partial = output.with_name(output.name + ".partial")
    log_path = output.with_suffix(".log")
    env = {**(os.environ if env is None else env), **(secrets or {})}
    redactor = Redactor(secrets or {})
    started = datetime.now(UTC)
    with contextlib.ExitStack() as stack:
        pool = kernels if kernels is not None else stack.enter_context(KernelPool())
        try:
            with watching(memory_mb) as usage:
                kernel = pool.take(env, cwd, ahead=ahead)
                status, error, error_class = _run_papermill(
                    notebook, partial, values, log_path, timeout_s, kernel, progress, redactor
                )
            reported = read_error_class(kernel.outcome_path)  # before the pool removes the kernel's files
        except BaseException:  # interrupted (SIGTERM): the archive still keeps what ran, rendered
            with contextlib.suppress(Exception):  # the previous step's report first: one render at a time
                pool.settle()
            _keep_partial(partial, output, title)
            raise
    finished = datetime.now(UTC)
    failed_cell = None
    executed = partial.exists()  # papermill saved the notebook at least once
    if executed:
        nb = nbformat.read(partial, as_version=4)
        cell_error = find_failed_cell(nb)
        if status == StepStatus.TIMEOUT:
            failed_cell, error = find_running_cell(nb), timeout_error or error
        elif cell_error is not None:
            failed_cell, error = cell_error
            error_class = reported or ErrorClass.CELL_ERROR
            if error_class == ErrorClass.WAITING:
                status = StepStatus.WAITING  # the drawing's result is not published yet: not a failure
        os.replace(partial, output)
    elif status == StepStatus.SUCCESS:
        status, error, error_class = StepStatus.FAILED, "papermill wrote no output notebook", ErrorClass.PAPERMILL
    if usage.exceeded:
        status, error_class, error = StepStatus.FAILED, ErrorClass.MEMORY, usage.message()
    error = redactor.text(error) if error else error
    about = {
        "run_id": title.run_id,
        "job": title.job,
        "target_draw_date": title.target_draw_date,
        "status": str(status),
        "error": error,
    }
    if kernels is not None:
        kernels.settle()  # the previous step's report, rendered while this step ran (a failure raises here)
    if executed and kernels is not None and ahead:  # more steps follow: rendered while the next one runs
        html = output.with_suffix(".html")
        kernels.defer(functools.partial(render_html, nb, html, **about))
    elif executed:
        html = render_html(nb, output.with_suffix(".html"), **about)
    else:
        html = write_unexecuted_report(notebook, output, error or "the step did not run", **about)
    return StepOutcome(
        notebook=notebook,
        status=status,
        started_at=started,
        finished_at=finished,
        parameters=values,
        command=tuple(papermill_command(notebook, output, values, cwd=cwd)),
        error_class=error_class,
        error=error,
        failed_cell=failed_cell,
        output=output if output.exists() else None,
        html=html,
        log=log_path if log_path.exists() else None,
        peak_rss_mb=usage.peak_rss_mb,
        cpu_s=usage.cpu_s,
    )


def _keep_partial(partial: Path, output: Path, title: ReportTitle) -> None:
    """Move a partial notebook into place and render it; never masks the exception being handled."""
    with contextlib.suppress(Exception):
        promote_partial(output, run_id=title.run_id, job=title.job, target_draw_date=title.target_draw_date)


def promote_partial(output: Path, *, banner: str | None = None, tag: str | None = None, **metadata: Any) -> Path | None:
    """Move ``output``'s partial notebook (``.ipynb.partial``) into place and render it; None if there is none.

    ``banner`` (markdown, tagged ``tag``) goes on top of the notebook first; ``metadata`` is the report's
    title and error block (:func:`render_html`). Used when a step was stopped mid-run: interrupted here,
    or found dead by whoever closes a crashed run.
    """
    load_notebook_tools()
    import nbformat

    partial = output.with_name(output.name + ".partial")
    if not partial.exists():
        return None
    nb = nbformat.read(partial, as_version=4)
    if banner is not None:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner, metadata={"tags": [tag] if tag else []}))
        nbformat.write(nb, str(partial))
    os.replace(partial, output)
    return render_html(nb, output.with_suffix(".html"), **metadata)


def write_unexecuted_report(notebook: Path, output: Path, reason: str, **metadata: Any) -> Path:
    """The report of a step stopped before papermill saved anything: the source notebook, reason on top.

    Writes ``output`` (the unexecuted notebook with a banner cell) and its HTML; returns the HTML path.
    """
    load_notebook_tools()
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    banner = nbformat.v4.new_markdown_cell(
        f"**This step did not run to its first cell: {reason}.**\n\nBelow is the notebook as it would have "
        "run; no cell was executed.",
        metadata={"tags": ["shiol-unexecuted"]},
    )
    nb.cells.insert(0, banner)
    tmp = output.with_name(output.name + ".tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, output)
    return render_html(nb, output.with_suffix(".html"), **metadata)


def _run_papermill(
    notebook: Path,
    partial: Path,
    values: Mapping[str, Any],
    log_path: Path,
    timeout_s: float,
    kernel: StepKernel,
    progress: bool,
    redactor: Redactor,
) -> tuple[StepStatus, str | None, ErrorClass | None]:
    """Execute the notebook in ``kernel`` with papermill's API; on timeout kill the kernel and its children.

    The step's log gets papermill's messages, the cells' stdout and stderr, and the kernel's own output.
    The kernel is stopped on every path. The notebook and the log are written redacted (``redactor``).
    """
    load_notebook_tools()
    import papermill
    from nbclient.exceptions import DeadKernelError

    from shiol_lib.execution.engine import ENGINE_NAME

    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        kernel.kill()

    timer = threading.Timer(max(0.0, timeout_s), expire)
    timer.daemon = True
    watch_process(kernel.pid)  # peak memory and CPU of the kernel's tree; the memory ceiling (execution/resources.py)
    with (
        open(log_path, "w", encoding="utf-8") as log_target,
        redacting(log_target, redactor) as log_file,
        _papermill_log(log_file),
        warnings.catch_warnings(),
    ):
        timer.start()
        try:
            warnings.filterwarnings("ignore", message="The specified file .* does not end in", category=UserWarning)
            papermill.execute_notebook(
                str(notebook),
                str(partial),
                dict(values),
                engine_name=ENGINE_NAME,
                kernel_name=KERNEL_NAME,
                km=kernel.manager,
                progress_bar=progress,
                redact=redactor.notebook if redactor else None,
                stdout_file=log_file,
                stderr_file=log_file,
                start_timeout=int(max(60.0, timeout_s)) + 1,
            )
            outcome: tuple[StepStatus, str | None, ErrorClass | None] = (StepStatus.SUCCESS, None, None)
        except Interrupted:  # SIGTERM: the job records the run interrupted (the kernel is stopped below)
            raise
        except Exception as err:  # noqa: BLE001 - classified below; the notebook says which cell raised
            if timed_out.is_set():
                outcome = (
                    StepStatus.TIMEOUT,
                    f"the notebook exceeded its {timeout_s:g} s wall-clock limit; kernel killed",
                    ErrorClass.TIMEOUT,
                )
            elif isinstance(err, DeadKernelError) or not kernel.alive():
                outcome = (StepStatus.FAILED, "the kernel died during execution", ErrorClass.KERNEL_DEATH)
            else:
                outcome = (
                    StepStatus.FAILED,
                    f"papermill: {type(err).__name__}: {_last_line(str(err))}",
                    ErrorClass.PAPERMILL,
                )
            log_file.write(f"\n{outcome[0]}: {outcome[1]}\n")
        finally:  # interrupted (SIGTERM, Ctrl-C) too: never leave a kernel behind
            timer.cancel()
            kernel.stop(reap=False)  # its watchdog exits by itself; the pool reaps it when it closes
            kernel_output = kernel.read_log()
            if kernel_output.strip():
                log_file.write("\n--- kernel output ---\n" + kernel_output)
    return outcome


@contextlib.contextmanager
def _papermill_log(log_file: TextIO | RedactingWriter) -> Iterator[None]:
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


def render_html(nb: nbformat.NotebookNode, path: Path, **metadata: Any) -> Path:
    """Render an executed notebook to its self-contained HTML report (:func:`report.render_report`).

    ``metadata`` (``run_id``, ``job``, ``target_draw_date``, ``status``, ``error``) goes to the title and
    the error block.
    """
    from shiol_lib.reports.report import render_report

    return render_report(nb, path, **metadata)
