"""Step kernels: each step gets a fresh kernel of its own, and the next one is started while it runs.

:class:`KernelPool` hands out one started :class:`StepKernel` per step (:meth:`KernelPool.take`) and,
when more steps follow, starts the next step's kernel right away, so that its start and its imports
(:data:`WARM_CODE`, run by IPython before the kernel answers) happen on the
otherwise idle core while the current step runs. A spare kernel is used only if it is still alive and
was started with exactly the environment and working directory asked for; otherwise it is discarded and
a fresh one started. Every kernel is started the same way, spare or not, so a step sees the same kernel
whichever it got. The pool's kernels are forked from its kernel template (:mod:`shiol_lib.execution.template`,
one per environment and working directory, started by :meth:`KernelPool.prepare` while the job gets
ready): the imports of :data:`WARM_CODE` then happen once per job instead of once per step.

A kernel never outlives the job process: it gets ``PR_SET_PDEATHSIG`` (it is started from the main
thread, which lives as long as the process; a forked kernel from its template, which gets it from the
job) and a watchdog (:mod:`shiol_lib.execution.watchdog`) that
kills it and whatever its cells started once the job process or the kernel is gone.
:meth:`StepKernel.stop` kills the kernel's whole process tree; :meth:`KernelPool.close` stops the spare.

The pool also runs the job process's own work that no step waits for (a step's HTML report, rendered
while the next step runs: :meth:`KernelPool.defer`, :meth:`KernelPool.settle`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from shiol_lib.execution.channel import CHANNEL_CODE, OUTCOME_ENV
from shiol_lib.execution.processes import die_with, kill_process_tree
from shiol_lib.execution.template import ForkedProcess, KernelTemplate, TemplateProvisioner, templates_enabled
from shiol_lib.execution.watchdog import start_watchdog

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"  # the Jupyter kernel every step notebook (and `shiol lab`) runs in
# What every step kernel runs before its first cell: the library and what its steps import.
WARM_CODE = "import shiol_lib.steps; shiol_lib.steps.preload()"


class _StepKernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients it made, so that their channels can be closed.

    Papermill, handed a kernel manager it does not own, leaves its client's channels open.
    """

    def client(self, **kwargs: Any) -> Any:
        """A client of this kernel, remembered for :meth:`StepKernel.stop`."""
        kc = super().client(**kwargs)
        self.__dict__.setdefault("_shiol_clients", []).append(kc)
        return kc


class StepKernel:
    """One started kernel: its manager (for papermill), pid, environment, working directory and log."""

    def __init__(
        self, env: Mapping[str, str], cwd: Path, log_path: Path, warm_code: str, template: KernelTemplate | None = None
    ) -> None:
        self.env, self.cwd, self.log_path = dict(env), Path(cwd), log_path
        self.outcome_path = log_path.with_suffix(".outcome.json")  # its typed outcome channel (execution/channel.py)
        self.manager = _StepKernelManager(kernel_name=KERNEL_NAME)
        if template is not None:  # forked from the job's template (execution/template.py), fresh if it cannot
            self.manager.kernel_id = str(uuid.uuid4())
            provisioner = TemplateProvisioner(
                kernel_id=self.manager.kernel_id, kernel_spec=self.manager.kernel_spec, parent=self.manager
            )
            provisioner.template, provisioner.log_path = template, log_path
            self.manager.provisioner = provisioner
        first_lines = "; ".join(code for code in (CHANNEL_CODE, warm_code) if code)
        arguments = [
            "--HistoryManager.hist_file=:memory:",  # as nbclient starts its own kernels
            f"--IPKernelApp.exec_lines={first_lines}",
        ]
        with open(log_path, "ab") as log_file:
            run_sync(self.manager.start_kernel)(
                extra_arguments=arguments,
                env={**env, OUTCOME_ENV: str(self.outcome_path)},
                cwd=str(cwd),
                stdout=log_file,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with(os.getpid()),
            )
        self.pid: int = self.manager.provisioner.process.pid  # type: ignore[union-attr]
        self._watchdog = start_watchdog(os.getpid(), self.pid)  # the kernel's children die with us too
        self._stopped = False

    def alive(self) -> bool:
        """Whether the kernel process still runs."""
        process = getattr(self.manager.provisioner, "process", None)  # a local provisioner's Popen
        return process is not None and process.poll() is None

    def matches(self, env: Mapping[str, str], cwd: Path) -> bool:
        """Whether this kernel was started with exactly ``env`` and ``cwd``."""
        return self.env == dict(env) and self.cwd == Path(cwd)

    def kill(self) -> None:
        """SIGKILL the kernel and every process it started (a timeout, an interrupt)."""
        kill_process_tree(self.pid)

    def stop(self, *, reap: bool = True) -> None:
        """Kill the kernel's tree, close the clients' channels, remove the connection file; idempotent.

        The watchdog then exits on its own within :data:`~shiol_lib.execution.watchdog.POLL_S`; with
        ``reap`` false a daemon thread waits for it (no zombie is left) instead of the caller.
        """
        if not self._stopped:
            self._stopped = True
            self.kill()
            process = getattr(self.manager.provisioner, "process", None)
            if isinstance(process, ForkedProcess):
                process.close()  # its pidfd now, not when the object is collected
            for kc in self.manager.__dict__.get("_shiol_clients", []):
                with contextlib.suppress(Exception):
                    kc.stop_channels()
            with contextlib.suppress(Exception):
                run_sync(self.manager.cleanup_resources)()
        if reap:
            self.reap()
        else:
            threading.Thread(target=self.reap, name=f"reap-watchdog-{self.pid}", daemon=True).start()

    def reap(self) -> None:
        """Wait for the watchdog to exit (it does once the kernel is gone)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._watchdog.wait(timeout=10)

    def read_log(self) -> str:
        """What the kernel process wrote to its stdout and stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


class KernelPool:
    """Fresh kernels for the steps of one job, the next one started (and warmed) ahead.

    Use as a context manager; leaving it stops the spare kernel, whatever happened.
    """

    def __init__(self, warm_code: str = WARM_CODE) -> None:
        self.warm_code = warm_code
        self._spare: StepKernel | None = None
        self._logs = tempfile.TemporaryDirectory(prefix="shiol-kernels-")
        self._count = 0
        self._started: list[StepKernel] = []  # every kernel handed out or spare, stopped and reaped at close
        self._worker: ThreadPoolExecutor | None = None  # runs deferred tasks, one at a time, in order
        self._deferred: list[Future[object]] = []
        self._template: KernelTemplate | None = None  # the kernels' template (execution/template.py)

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def take(self, env: Mapping[str, str], cwd: Path, *, ahead: bool = False) -> StepKernel:
        """A started kernel with exactly ``env`` and ``cwd``; with ``ahead``, start the next one now."""
        kernel, self._spare = self._spare, None
        if kernel is not None and not (kernel.alive() and kernel.matches(env, cwd)):
            log.info("discarding the spare kernel (%s)", "dead" if not kernel.alive() else "other environment")
            kernel.stop()
            kernel = None
        if kernel is None:
            kernel = self._start(env, cwd)
        if ahead:
            self._spare = self._start(env, cwd)
        return kernel

    def prepare(self, env: Mapping[str, str], cwd: Path) -> None:
        """Get the first step's kernel going while the job gets ready: its template, else a kernel itself.

        Only a head start: when it cannot start (no such folder yet), :meth:`take` tries again and says why.
        """
        if self._spare is None and Path(cwd).is_dir():
            try:
                if self._template_for(env, cwd) is None:
                    self._spare = self._start(env, cwd)
            except Exception as err:  # noqa: BLE001 - take() starts one again and raises then
                log.warning("could not start a kernel ahead: %s", err)

    def defer(self, task: Callable[[], object]) -> None:
        """Run ``task`` on the pool's worker thread, after the tasks deferred before it; see :meth:`settle`."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shiol-deferred")
        self._deferred.append(self._worker.submit(task))

    def settle(self) -> None:
        """Wait for every deferred task; raise the first failure (the later tasks still ran)."""
        deferred, self._deferred = self._deferred, []
        failures = [err for err in (future.exception() for future in deferred) if err is not None]
        if failures:
            raise failures[0]

    def close(self) -> None:
        """Wait for the deferred tasks (a failure is logged), stop the spare kernel, reap every watchdog.

        The kernels' log folder is removed last.
        """
        try:
            self.settle()
        except Exception as err:  # noqa: BLE001 - the caller settles to see failures; closing must not mask its error
            log.warning("a deferred task failed (a step's report may be missing): %s", err)  # one line, no traceback
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        spare, self._spare = self._spare, None
        for kernel in [*([spare] if spare is not None else []), *self._started]:
            kernel.stop()
        self._started.clear()
        template, self._template = self._template, None
        if template is not None:
            template.close()
        with contextlib.suppress(OSError):
            self._logs.cleanup()

    def _start(self, env: Mapping[str, str], cwd: Path) -> StepKernel:
        template = self._template_for(env, cwd)
        self._count += 1
        kernel = StepKernel(env, cwd, Path(self._logs.name) / f"kernel-{self._count}.log", self.warm_code, template)
        self._started.append(kernel)
        return kernel

    def _template_for(self, env: Mapping[str, str], cwd: Path) -> KernelTemplate | None:
        """The template for kernels with ``env`` and ``cwd``, started now if needed; None when turned off.

        A template started for another environment (or one that died) is closed first: the pool hands
        out one kernel at a time, and a step's kernel is stopped before the next is taken.
        """
        if self._template is not None and self._template.serves(env, cwd):
            return self._template
        if self._template is not None:
            self._template.close()
            self._template = None
        if not templates_enabled(env):
            return None
        self._count += 1
        try:
            self._template = KernelTemplate(
                env, cwd, self.warm_code, Path(self._logs.name) / f"template-{self._count}.log"
            )
        except OSError as err:
            log.warning("starting fresh kernels: the kernel template could not start (%s)", err)
        return self._template
