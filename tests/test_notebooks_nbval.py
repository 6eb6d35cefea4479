"""Every notebook runs by hand with its default parameters: nbval over the pipeline notebooks (10 .. 70, in
order), and over the research notebooks 80 and 81 and the exploratory ones, each group on a store seeded
from the bundled history in a temp folder of its own.

nbval starts each notebook's kernel in the notebook's own folder (``cwd=fspath.dirname``), as JupyterLab
does, so the defaults ``../var/shiol.duckdb`` and ``../../var/shiol.snapshot.duckdb`` of the copies resolve
to ``tmp_path/var``: the repository's own ``var/`` is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from fakesources import NyServer, history_draws

from shiol_lib.store import open_store
from shiol_lib.store.predictions import read_predictions

REPO = Path(__file__).resolve().parents[1]
SHIOL = str(Path(sys.executable).parent / "shiol")
PIPELINE = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPLORATORY = sorted(p.name for p in (REPO / "notebooks" / "exploratory").glob("*.ipynb"))


def _env(home: Path, ny_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    """The process environment without any ``SHIOL_*`` setting of the caller; NY Open Data at ``ny_url``.

    The default is unreachable; step 1's notebook, run online by its defaults, needs a source that answers
    (a local NY server holding the bundled history), or it rightly fails ("no source answered").
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIOL_")}
    return {**env, "SHIOL_HOME": str(home), "SHIOL_NY_BASE_URL": ny_url, "SHIOL_HTTP_RETRIES": "0"}


def _tree(folder: Path) -> list[tuple[str, int, int]] | None:
    """Every file below ``folder`` with its size and mtime (None when the folder does not exist)."""
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def _code_cells(path: Path) -> int:
    return sum(cell.cell_type == "code" for cell in nbformat.read(path, as_version=4).cells)


def _cell_results(junit: Path) -> list[tuple[str, str, str]]:
    """``(notebook, cell, outcome)`` of every nbval item, in run order, from pytest's JUnit XML."""
    cases = ET.parse(junit).getroot().iter("testcase")
    return [
        (
            case.get("classname", ""),
            case.get("name", ""),
            next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed"),
        )
        for case in cases
    ]


# Two independent groups, each on a store of its own, so that two test workers can run them side by side:
# the pipeline notebooks in order (each reads what the one before stored), then the research notebooks and
# the exploratory ones (they read the seeded history, and a past run when there is one).
GROUPS = {
    "pipeline": [name for name in PIPELINE if name < "80"],
    "research-and-exploratory": [name for name in PIPELINE if name >= "80"]
    + [f"exploratory/{name}" for name in EXPLORATORY],
}


def test_the_groups_hold_every_notebook_once() -> None:
    assert PIPELINE[0] == "10_update_data.ipynb" and "70_evaluate_predictions.ipynb" in PIPELINE, PIPELINE
    assert PIPELINE[-2:] == ["80_research_backtest.ipynb", "81_detection_power.ipynb"], PIPELINE
    assert EXPLORATORY, "no notebook in notebooks/exploratory"
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted([*PIPELINE, *(f"exploratory/{name}" for name in EXPLORATORY)])
    assert len(grouped) == len(set(grouped))
    assert GROUPS["pipeline"][-1] == "70_evaluate_predictions.ipynb"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("group", list(GROUPS))
def test_every_notebook_runs_with_its_default_parameters(tmp_path: Path, group: str) -> None:
    repo_var = _tree(REPO / "var")
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))

    seeded = subprocess.run(
        [SHIOL, "update-data", "--offline"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "seeded the empty store with 1647 draws" in seeded.stdout
    assert (tmp_path / "var" / "shiol.snapshot.duckdb").exists()

    notebooks = [tmp_path / "notebooks" / name for name in GROUPS[group]]
    ini = tmp_path / "pytest.ini"  # the inner run reads no configuration of the repository
    ini.write_text("[pytest]\n")
    ny = NyServer(history_draws()).start()
    try:
        done = _run_nbval(tmp_path, ini, notebooks, ny.url)
    finally:
        ny.stop()
    report = done.stdout[-8000:] + done.stderr[-2000:]
    assert done.returncode == 0, report

    expected = {str(path.relative_to(tmp_path)).replace(os.sep, "."): _code_cells(path) for path in notebooks}
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(rf"\b{sum(expected.values())} passed\b", summary), report
    assert not re.search(r"\b(failed|error|errors|skipped)\b", summary), report
    cells = _cell_results(tmp_path / "nbval.xml")
    assert {outcome for _, _, outcome in cells} == {"passed"}, report
    assert list(dict.fromkeys(notebook for notebook, _, _ in cells)) == list(expected), "not run in the order given"
    assert Counter(notebook for notebook, _, _ in cells) == expected, "a notebook's code cells were not all run"

    if group == "pipeline":
        predictions = read_predictions(open_store(tmp_path / "var" / "shiol.duckdb"), "manual")
        assert len(predictions) == 100, "step 5 with its defaults wrote elsewhere than tmp_path/var"
    assert _tree(REPO / "var") == repo_var, "the notebooks touched the repository's own var/"


def _run_nbval(tmp_path: Path, ini: Path, notebooks: list[Path], ny_url: str) -> subprocess.CompletedProcess:
    """Every notebook under nbval, in a pytest of its own, with NY Open Data at ``ny_url``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ini),
            "--nbval-lax",
            "--nbval-current-env",
            "--nbval-cell-timeout=300",
            "-p",
            "no:cacheprovider",
            "-v",
            f"--junitxml={tmp_path / 'nbval.xml'}",
            *map(str, notebooks),
        ],
        cwd=tmp_path,
        env=_env(tmp_path, ny_url),
        capture_output=True,
        text=True,
        timeout=840,
    )
