"""The bundled notebooks with the short validation of ``bench/run.py --quick`` (13 drawings replayed,
5 tuning drawings), for tests of what runs the pipeline (kill paths, restarts, pages), not of the model."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SHORT = {"tune_draws: int = 20": "tune_draws: int = 5", "test_draws: int = 52": "test_draws: int = 13"}


def short_notebooks(dest: Path) -> Path:
    """A copy of ``notebooks/`` at ``dest`` whose pipeline steps validate on the short settings; returns it."""
    shutil.copytree(REPO / "notebooks", dest)
    done = set()
    for path in sorted(dest.glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for old, new in SHORT.items():
                if old in cell.source:
                    cell.source = cell.source.replace(old, new)
                    done.add(old)
        nbformat.write(nb, str(path))
    assert done == set(SHORT), f"the notebooks' defaults changed: {sorted(set(SHORT) - done)} not found"
    return dest
