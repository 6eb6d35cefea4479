"""Tests that never ran (issue 21, class 11): the service-unit tests used to skip whenever the checkout lay
in a temporary folder, where a fresh CI clone may well lie, so the systemd unit could regress unseen.

Here tests/cli/test_service_unit.py runs for real in a pytest of its own from a copy of the checkout in
each temporary folder a service cannot use (/tmp, /var/tmp: what PrivateTmp= hides), at the top and deep
inside as a CI runner's build folder lies: every one of its tests must run and pass, none skipped. (The
copy holds the package and that test file; it needs none of tests/conftest.py's fixtures, so its pytest
runs with --noconftest. From the checkout itself the ordinary suite runs it.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from shiol_lib.cli.service import TEMPORARY_DIRECTORIES

pytestmark = pytest.mark.faults("unit-checks")

REPO = Path(__file__).resolve().parents[2]
UNIT_TESTS = Path("tests") / "cli" / "test_service_unit.py"


def _copy_checkout(into: Path) -> None:
    """The parts of the checkout the unit tests need: the package, its notebooks, the test helpers."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("shiol_lib", "notebooks"):
        shutil.copytree(REPO / folder, into / folder, ignore=ignore)
    for name in ("pyproject.toml", "schedules.py"):
        shutil.copy2(REPO / name, into / name)
    (into / "tests" / "cli").mkdir(parents=True)
    shutil.copy2(REPO / UNIT_TESTS, into / UNIT_TESTS)


def _run_unit_tests(checkout: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    env["PYTHONPATH"] = str(checkout)
    imported = subprocess.run(
        [sys.executable, "-c", "import shiol_lib; print(shiol_lib.__file__)"],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert Path(imported.stdout.strip()).is_relative_to(checkout), imported  # the copy's code, not ours
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(UNIT_TESTS), "-q", "-rs", "-p", "no:cacheprovider", "--noconftest"],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard
    )


WHERE = [(d, Path()) for d in TEMPORARY_DIRECTORIES] + [(TEMPORARY_DIRECTORIES[0], Path("builds/org/shiol"))]


@pytest.mark.parametrize(("root", "inside"), WHERE, ids=[str(root / inside) for root, inside in WHERE])
def test_the_service_unit_tests_run_and_pass_wherever_the_checkout_lies(root: Path, inside: Path) -> None:
    clone = Path(tempfile.mkdtemp(prefix="shiol-ci-", dir=root))
    try:
        _copy_checkout(clone / inside)
        done = _run_unit_tests(clone / inside)
    finally:
        shutil.rmtree(clone)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.fullmatch(r"\d+ passed in .*", summary), done.stdout[-3000:]  # nothing skipped, failed or errored
    assert int(summary.split()[0]) >= 15, summary
