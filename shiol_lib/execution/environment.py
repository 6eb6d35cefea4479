"""Capture the environment a step kernel runs on: Python version, kernel spec and installed distributions.

:func:`capture` reads the kernel spec the runs use (:data:`~shiol_lib.execution.kernels.KERNEL_NAME`
unless named) with jupyter_client's ``KernelSpecManager``, resolves its interpreter as the kernel
manager does (``python``, ``python3``, ``python3.11`` mean this process's interpreter), and lists that
interpreter's installed distributions: with ``importlib.metadata`` when it is this process's
interpreter, else with one subprocess. The list is cached per process, keyed by the interpreter and the
modification times of its ``site-packages`` folders (installing, removing or upgrading a distribution
changes them), so the steps of a job pay for it once.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from shiol_lib.domain.environments import EnvironmentRecord
from shiol_lib.errors import RunnerError

log = logging.getLogger(__name__)

_PACKAGES_TIMEOUT_S = 60.0
_cache: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[str, tuple[str, ...]]] = {}
# What the other interpreter prints: its version and its distributions (names normalized as below).
_LIST_CODE = (
    "import importlib.metadata as m, json, platform, re\n"
    "names = {(re.sub(r'[-_.]+', '-', d.metadata['Name'] or '').lower(), d.version) for d in m.distributions()}\n"
    "print(json.dumps([platform.python_version(), sorted(f'{n}=={v}' for n, v in names if n)]))\n"
)


def capture(
    kernel_name: str | None,
    env: Mapping[str, str],
    *,
    packages: Sequence[str] | None = None,
) -> EnvironmentRecord:
    """The :class:`EnvironmentRecord` of a kernel started from spec ``kernel_name`` with ``env``.

    Args:
        kernel_name: The kernel spec (default: the one the step runs use).
        env: The kernel's environment (its ``PATH`` resolves a bare interpreter name).
        packages: The ``name==version`` list to record instead of the installed one (tests).

    Raises:
        RunnerError: no such kernel spec, or its interpreter cannot be found or listed.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from shiol_lib.execution.kernels import KERNEL_NAME

    name = kernel_name or KERNEL_NAME
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as err:
        raise RunnerError(
            f"no Jupyter kernel spec named {name!r}; install it (python -m ipykernel install --sys-prefix) "
            "or name one that `jupyter kernelspec list` shows"
        ) from err
    interpreter = resolve_interpreter(list(spec.argv), env)
    python, installed = _installed(interpreter, env)
    return EnvironmentRecord(
        python=python,
        kernel_name=name,
        kernel_argv=tuple(spec.argv),
        interpreter=interpreter,
        packages=tuple(packages) if packages is not None else installed,
    )


def resolve_interpreter(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The absolute path of the program a kernel spec's ``argv`` starts (as jupyter_client resolves it)."""
    if not argv:
        raise RunnerError("the kernel spec has an empty argv; reinstall the kernel spec")
    program = argv[0]
    if program in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return sys.executable
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise RunnerError(f"the kernel spec's interpreter {program!r} is not on the kernel's PATH; fix the kernel spec")
    return os.path.abspath(found)


def clear_cache() -> None:
    """Forget the cached package lists (the next :func:`capture` lists them again)."""
    _cache.clear()


def _installed(interpreter: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """(Python version, sorted ``name==version`` list) of ``interpreter``, cached while its folders stand still."""
    key = (interpreter, _site_mtimes(interpreter))
    if key not in _cache:
        _cache[key] = _list_here() if interpreter == sys.executable else _list_there(interpreter, env)
    return _cache[key]


def _site_mtimes(interpreter: str) -> tuple[tuple[str, int], ...]:
    if interpreter == sys.executable:
        folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    else:
        folders = {str(p) for p in Path(interpreter).parent.parent.glob("lib*/python*/site-packages")}
    stamps = []
    for folder in sorted(folders):
        try:
            stamps.append((folder, os.stat(folder).st_mtime_ns))
        except OSError:
            continue
    return tuple(stamps)


def _normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Jupyter_Client`` -> ``jupyter-client``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _list_here() -> tuple[str, tuple[str, ...]]:
    entries = {(_normalize(d.metadata["Name"] or ""), d.version) for d in metadata.distributions()}
    return platform.python_version(), tuple(sorted(f"{n}=={v}" for n, v in entries if n))


def _list_there(interpreter: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    try:
        done = subprocess.run(
            [interpreter, "-c", _LIST_CODE],
            capture_output=True,
            text=True,
            timeout=_PACKAGES_TIMEOUT_S,
            env=dict(env),
            stdin=subprocess.DEVNULL,
        )
        python, packages = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as err:
        said = locals().get("done")
        detail = said.stderr.strip().splitlines()[-1:] if isinstance(said, subprocess.CompletedProcess) else []
        raise RunnerError(
            f"could not list the distributions of the kernel's interpreter {interpreter}: {err} {' '.join(detail)}"
        ) from err
    return str(python), tuple(str(p) for p in packages)
