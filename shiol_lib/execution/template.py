"""Step kernels forked from one process that imported the analysis stack once: the kernel template.

A fresh kernel spends about 2 s of CPU and 200 MB importing the library and what its steps use, six
times per pipeline run. A job's :class:`~shiol_lib.execution.kernels.KernelPool` instead starts one
template, ``python -m shiol_lib.execution.template``, with the steps' environment and working directory:
it imports IPython's kernel and runs the warm-up code (:data:`~shiol_lib.execution.kernels.WARM_CODE`)
once, then forks one kernel per request. The fork becomes the kernel exactly as ``ipykernel_launcher``
would start it (its own session, the step's environment, working directory, log file and arguments), so
a step sees the kernel a fresh start gives, with the stack already imported; the kernels share the
stack's memory pages until they write them.

The job talks to its template over the template's stdin and stdout, one JSON line per request and
reply. Whoever dies, nothing is left: the template gets ``PR_SET_PDEATHSIG`` from the job (started from
the job's main thread), each kernel from the template, and each kernel also has the job's watchdog
(:mod:`shiol_lib.execution.watchdog`). The template reaps its kernels as they end (their CPU time
then counts in the job's, as a fresh kernel's does); the job does not learn a kernel's exit status
(:attr:`ForkedProcess.returncode` is -1). A kernel's command line reads as a fresh kernel's
(``setproctitle``), so ``ps`` and the tests that look for ``ipykernel`` see it as one.

:class:`TemplateProvisioner` is the jupyter_client provisioner that launches a kernel by a fork of the
template (and by a plain start when the template cannot: it died, or the command is not this
interpreter's ``ipykernel_launcher``). ``SHIOL_KERNEL_TEMPLATE=off`` in the kernels' environment turns
templates off (every kernel starts fresh).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner

from shiol_lib.execution.processes import die_with, kill_process_tree, set_parent_death_signal

log = logging.getLogger(__name__)

TEMPLATE_ENV = "SHIOL_KERNEL_TEMPLATE"  # "off": no template, every kernel starts fresh (settings.py)
LAUNCHER = ("-m", "ipykernel_launcher")  # what a kernel spec of this interpreter starts
_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel sets when MPLBACKEND is unset


class TemplateError(RuntimeError):
    """The template could not fork a kernel (it died, or refused the request)."""


def templates_enabled(env: Mapping[str, str]) -> bool:
    """Whether step kernels may be forked from a template (``SHIOL_KERNEL_TEMPLATE`` is not ``off``)."""
    return env.get(TEMPLATE_ENV, "on").strip().lower() != "off"


class ForkedProcess:
    """A kernel forked by the template, watched through a pidfd (``subprocess.Popen``'s surface).

    The kernel is the template's child, not ours: :meth:`poll` tells whether it still runs but not how
    it ended, so :attr:`returncode` becomes -1 once it has.
    """

    stdin = stdout = stderr = None  # LocalProvisioner.wait() closes these when set

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # it ended before we looked
            self._pidfd, self.returncode = None, -1

    def poll(self) -> int | None:
        """None while the kernel runs, else -1."""
        if self.returncode is None and self._pidfd is not None and select.select([self._pidfd], [], [], 0)[0]:
            self._ended()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the kernel to end (``subprocess.TimeoutExpired`` after ``timeout`` seconds)."""
        if self.returncode is None and self._pidfd is not None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self._ended()
        return self.returncode if self.returncode is not None else -1

    def send_signal(self, signum: int) -> None:
        """Signal the kernel while it runs (never a process that took its pid since)."""
        if self.poll() is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        """SIGKILL the kernel."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the kernel."""
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """Stop watching the kernel (it was killed): its pidfd is closed, and it counts as ended from now on."""
        self._ended()

    def _ended(self) -> None:
        self.returncode = -1
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class KernelTemplate:
    """One template process of a job: started with the steps' environment and working directory."""

    def __init__(self, env: Mapping[str, str], cwd: Path, warm_code: str, log_path: Path) -> None:
        self.env, self.cwd, self.log_path = dict(env), Path(cwd), log_path
        self._lock = threading.Lock()  # one request at a time on the pipe
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shiol_lib.execution.template", warm_code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env=self.env,
                cwd=str(cwd),
                preexec_fn=die_with(os.getpid()),  # from the main thread: the template dies with the job
            )
        self._ready = self._broken = False

    def serves(self, env: Mapping[str, str], cwd: Path) -> bool:
        """Whether a kernel with ``env`` and ``cwd`` may be forked from this template (it runs, same start)."""
        return not self._broken and self.process.poll() is None and self.env == dict(env) and self.cwd == Path(cwd)

    def fork(self, cmd: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> ForkedProcess:
        """Fork a kernel running ``cmd`` (this interpreter's ``ipykernel_launcher`` and its arguments).

        Waits for the template's imports the first time. Raises :class:`TemplateError` when the template
        cannot serve the request; the caller then starts the kernel fresh.
        """
        if list(cmd[:3]) != [sys.executable, *LAUNCHER]:
            raise TemplateError(f"not this interpreter's kernel launcher: {list(cmd[:3])}")
        request = {"argv": list(cmd[3:]), "env": dict(env), "cwd": str(cwd), "log": str(log_path)}
        with self._lock:
            try:
                if not self._ready:
                    self._ready = self._read_reply().get("ready") is True
                self._send(request)
                reply = self._read_reply()
            except TemplateError:
                self._broken = True  # the conversation is lost: the pool starts another template
                raise
        if not isinstance(reply.get("pid"), int):
            raise TemplateError(f"the template refused the kernel: {reply.get('error', reply)}")
        return ForkedProcess(reply["pid"])

    def close(self) -> None:
        """End the template (its kernels die with it) and reap it; idempotent."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()  # end of requests: the template exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_process_tree(self.process.pid)
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _send(self, request: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except OSError as err:
            raise TemplateError(f"the template is gone ({err})") from err

    def _read_reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise TemplateError(f"the template ended (exit code {self.process.poll()}); see {self.log_path}")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise TemplateError(f"the template answered {line[:200]!r}")
        return reply


class TemplateProvisioner(LocalProvisioner):
    """Launches a kernel by a fork of :attr:`template` when it has one, else as the local provisioner does."""

    template: KernelTemplate | None = None
    log_path: Path | None = None  # the kernel's stdout and stderr (a forked kernel opens it itself)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Fork the kernel from the template; start it fresh if the template cannot."""
        if self.template is not None and self.log_path is not None:
            try:
                process = self.template.fork(cmd, kwargs["env"], Path(kwargs["cwd"]), self.log_path)
            except TemplateError as err:
                log.warning("starting a fresh kernel: %s", err)
            else:
                self.process = process  # type: ignore[assignment]  # Popen's surface, see ForkedProcess
                self.pid = self.pgid = process.pid  # its own session
                self.cwd = kwargs["cwd"]
                return self.connection_info
        return await super().launch_kernel(cmd, **kwargs)


# --- the template process ---------------------------------------------------------------------------


def serve(warm_code: str, requests: BinaryIO, replies: BinaryIO) -> int:
    """The template's life: import, say ready, then fork one kernel per request until the job hangs up."""
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):  # as ipykernel_launcher does
        del sys.path[0]
    os.environ.setdefault("MPLBACKEND", _INLINE_BACKEND)  # what the kernel sets before its first line runs
    from ipykernel import kernelapp  # noqa: F401 - imported once, for every kernel
    from setproctitle import getproctitle

    getproctitle()  # finds the command line's memory now, while the environment is still the original

    exec(compile(warm_code, "<warm code>", "exec"), {})  # noqa: S102 - the pool's own warm-up code
    signal.signal(signal.SIGCHLD, _reap)  # kernels are reaped as they end (their CPU time counts as ours)
    _reply(replies, {"ready": True})
    for line in requests:
        try:
            argv, env, cwd, log_path = _checked(json.loads(line))
            pid = _fork_kernel(argv, env, cwd, log_path, replies)
        except (ValueError, OSError) as err:
            _reply(replies, {"error": f"{type(err).__name__}: {err}"})
        else:
            _reply(replies, {"pid": pid})
    return 0


def _checked(request: object) -> tuple[list[str], dict[str, str], str, str]:
    """A fork request's argv, environment, working directory and log path, each of the right type."""
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    argv, env, cwd, log_path = (request.get(key) for key in ("argv", "env", "cwd", "log"))
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        raise ValueError("argv must be a list of strings")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("env must map strings to strings")
    if not (isinstance(cwd, str) and os.path.isdir(cwd)):
        raise ValueError(f"cwd must be an existing folder: {cwd!r}")
    if not isinstance(log_path, str):
        raise ValueError("log must be a path")
    return argv, env, cwd, log_path


def _fork_kernel(argv: list[str], env: dict[str, str], cwd: str, log_path: str, replies: BinaryIO) -> int:
    """Fork; in the child become the kernel (never returns there)."""
    template = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    try:  # the kernel: set up as jupyter_client's launcher would, then run ipykernel's app
        os.setsid()
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != template:  # the template died before the signal was armed
            os._exit(1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with contextlib.suppress(OSError):
            replies.close()  # stdin (the requests) becomes /dev/null below, as a fresh kernel's
        stdin = os.open(os.devnull, os.O_RDONLY)
        output = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(stdin, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(stdin)
        os.close(output)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _reseed()
        from ipykernel import kernelapp
        from setproctitle import setproctitle

        sys.argv = [_launcher_path(), *argv]  # as `python -m ipykernel_launcher` sets it
        setproctitle(" ".join([sys.executable, *LAUNCHER, *argv]))  # `ps` shows a kernel, as a fresh start would
        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BaseException:  # noqa: BLE001 - the kernel's log says why; never return to the template's loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def _launcher_path() -> str:
    spec = importlib.util.find_spec(LAUNCHER[1])
    return str(spec.origin) if spec is not None and spec.origin else LAUNCHER[1]


def _reap(signum: int, frame: object) -> None:
    """Reap every ended kernel (``waitpid``, so that their CPU time adds to the template's children's)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _reseed() -> None:
    """Give the kernel fresh random state, as a fresh start would (``random`` reseeds itself at fork)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _reply(replies: BinaryIO, message: Mapping[str, Any]) -> None:
    replies.write(json.dumps(message).encode() + b"\n")
    replies.flush()


def main(warm_code: str) -> int:
    """Replies go to a copy of stdout; stdout itself joins stderr (the log), so nothing printed mixes in."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return serve(warm_code, sys.stdin.buffer, replies)


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # nothing to finalize: skips a second of tearing down the imported stack
