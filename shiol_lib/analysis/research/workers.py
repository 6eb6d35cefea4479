"""A helper process for independent analysis work: a fresh interpreter that runs pickled calls in turn.

``multiprocessing``'s spawn and forkserver start methods re-run the caller's main script in each child,
which breaks (or recurses) in a script without an ``if __name__ == "__main__"`` guard, and fork copies a
threaded kernel. This worker is ``python -m shiol_lib.analysis.research.workers``: it imports only what the calls
need, reads ``(function, args)`` pickles from its stdin and writes ``(ok, value)`` pickles to its own
channel (its stdout is sent to stderr, so nothing printed can corrupt the channel). BLAS and OpenMP run
on one thread in it, as in the caller's own share of the work.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from shiol_lib.errors import ShiolError

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
CLOSE_TIMEOUT_S = 10.0


class WorkerError(ShiolError):
    """The helper process could not be started, or ended before it answered."""


class WorkerProcess:
    """One helper process; :meth:`call` runs a module-level function in it and returns its result."""

    def __init__(self) -> None:
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "shiol_lib.analysis.research.workers"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, **ONE_THREAD},
            )
        except OSError as err:
            raise WorkerError(f"the helper process could not be started: {err}") from err

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the helper process; its exception is raised here as it was raised there."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            pickle.dump((fn, args), self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
            ok, value = pickle.load(self._proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as err:
            raise WorkerError(
                f"the helper process {self._proc.pid} ended before it answered (exit code {self._proc.poll()}): {err}"
            ) from err
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """End the helper process (it exits when its input closes; killed if it does not in time)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(requests: BinaryIO, channel: BinaryIO) -> None:
    """Answer pickled calls from ``requests`` on ``channel`` until ``requests`` ends."""
    while True:
        try:
            fn, args = pickle.load(requests)
        except EOFError:
            return
        try:
            answer: tuple[bool, Any] = (True, fn(*args))
        except Exception as err:  # noqa: BLE001 - handed back to the caller, who raises it
            answer = (False, err)
        pickle.dump(answer, channel, protocol=pickle.HIGHEST_PROTOCOL)
        channel.flush()


if __name__ == "__main__":
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything printed goes to stderr, not the channel
    serve(sys.stdin.buffer, answers)
