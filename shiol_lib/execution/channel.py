"""The typed channel by which a step kernel tells the host how its failing cell ended.

Inside the kernel, :func:`install` (run before the first cell, :data:`CHANNEL_CODE`) installs an
IPython custom exception handler for :class:`~shiol_lib.errors.ShiolError`: when a cell raises one,
the handler writes the exception's ``error_class`` to the JSON file named by :data:`OUTCOME_ENV`,
then shows the traceback as IPython would. On the host, :func:`read_error_class` reads it back as an
:class:`~shiol_lib.domain.runs.ErrorClass`. Nothing here compares an exception's name: a subclass or
a renamed class keeps the outcome its class declares.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from shiol_lib.domain.runs import ErrorClass
from shiol_lib.errors import ShiolError

OUTCOME_ENV = "SHIOL_STEP_OUTCOME"  # the kernel's outcome file (set per kernel by execution/kernels.py)
# The kernel's first line, before any warm-up: a failing warm-up must not leave the channel closed.
CHANNEL_CODE = "import shiol_lib.execution.channel; shiol_lib.execution.channel.install()"


def install() -> None:
    """In a kernel: report a raised ShiolError's ``error_class`` to the file named by ``SHIOL_STEP_OUTCOME``.

    Does nothing outside IPython or without the variable (a kernel started by hand).
    """
    path = os.environ.get(OUTCOME_ENV)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if not path or shell is None:
        return

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
        _write(Path(path), value)
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)

    shell.set_custom_exc((ShiolError,), handler)


def _write(path: Path, error: BaseException) -> None:
    if path.exists():  # the first failure decides (a cell may not raise twice, but a kernel may be reused)
        return
    value = getattr(error, "error_class", None)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"error_class": value}), encoding="utf-8")
    os.replace(tmp, path)


def read_error_class(path: Path) -> ErrorClass | None:
    """The error class a kernel reported, or None (nothing reported, or a plain error).

    A value that is not an :class:`ErrorClass` (a bad declaration) reads as ``cell error``.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8")).get("error_class")
    except (OSError, ValueError, AttributeError):
        return None
    if value is None:
        return None
    try:
        return ErrorClass(value)
    except ValueError:
        return ErrorClass.CELL_ERROR
