"""Capturing a kernel's environment: Python, kernel spec, installed distributions and their hash."""

from __future__ import annotations

import os
import platform
import sys

import pytest

from shiol_lib.domain.environments import compare_packages
from shiol_lib.errors import RunnerError
from shiol_lib.execution import environment
from shiol_lib.execution.environment import capture, resolve_interpreter
from shiol_lib.execution.kernels import KERNEL_NAME


def test_capture_records_the_step_kernel_and_this_interpreters_distributions():
    record = capture(None, os.environ)
    assert (record.kernel_name, record.interpreter, record.python) == (
        KERNEL_NAME,
        sys.executable,
        platform.python_version(),
    )
    assert "ipykernel_launcher" in record.kernel_argv
    names = [entry.split("==")[0] for entry in record.packages]
    assert {"papermill", "duckdb", "jupyter-client"} <= set(names)  # names normalized
    assert list(record.packages) == sorted(record.packages) and len(names) == len(set(names))
    assert capture(KERNEL_NAME, os.environ) == record  # the same list, the same hash (cached)
    fields = record.manifest_fields()
    assert fields["packages_sha256"] == record.sha256 and fields["kernel"]["interpreter"] == sys.executable
    assert "packages" not in fields  # a manifest names the hash, never the list


def test_the_hash_follows_the_package_list_only():
    one = capture(None, os.environ, packages=["numpy==1.26.4", "pandas==2.2.2"])
    same = capture(None, os.environ, packages=["pandas==2.2.2", "numpy==1.26.4"])
    other = capture(None, os.environ, packages=["numpy==2.0.0", "pandas==2.2.2"])
    assert one.sha256 == same.sha256 != other.sha256
    drift = compare_packages(one.packages, other.packages, previous_sha=one.sha256)
    assert drift.changed == (("numpy", "1.26.4", "2.0.0"),) and not drift.added and not drift.removed
    assert drift.describe() == "numpy 1.26.4 -> 2.0.0"


def test_another_interpreter_is_listed_in_a_subprocess_and_agrees(monkeypatch):
    """A kernel spec naming another interpreter (here this one by another path) is listed by running it."""
    other = os.path.join(os.path.dirname(sys.executable), f"python{sys.version_info[0]}.{sys.version_info[1]}")
    if not os.path.exists(other) or other == sys.executable:
        pytest.skip("no second path to this interpreter")
    monkeypatch.setattr(environment, "resolve_interpreter", lambda argv, env: other)
    record = capture(None, os.environ)
    assert record.interpreter == other
    assert (record.python, record.packages) == environment._list_here()


def test_an_unknown_kernel_or_interpreter_is_a_clear_error():
    with pytest.raises(RunnerError, match="no Jupyter kernel spec named 'no-such-kernel'"):
        capture("no-such-kernel", os.environ)
    with pytest.raises(RunnerError, match="'no-such-python' is not on the kernel's PATH"):
        resolve_interpreter(["no-such-python", "-m", "ipykernel_launcher"], {"PATH": "/nonexistent"})
    assert resolve_interpreter(["python", "-m", "ipykernel_launcher"], {}) == sys.executable
