"""The catalog of steps and jobs: which notebook each step runs, and which steps each job walks.

A step here is a notebook the host runs; what the notebook does is :mod:`shiol_lib.steps`, called
inside its kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from shiol_lib.errors import RunnerError


@dataclass(frozen=True)
class Step:
    """One pipeline step: a name and the notebook that performs it."""

    name: str
    notebook: str

    @property
    def stem(self) -> str:
        """The notebook's name without ``.ipynb`` (also the stem of its archived files)."""
        return self.notebook.removesuffix(".ipynb")


KERNEL_NAME = "python3"  # the Jupyter kernel every step notebook (and `shiol lab`) runs in
# What every step kernel runs before its first cell (execution/kernels.py): the library and what its steps import.
WARM_CODE = "import shiol_lib.steps; shiol_lib.steps.preload()"

UPDATE_DATA = Step("update_data", "10_update_data.ipynb")
ANALYZE = Step("adaptive_analysis", "20_analyze_signals.ipynb")
OPTIMIZE = Step("weight_optimization", "30_optimize_weights.ipynb")
VALIDATE = Step("historical_validation", "40_validate_history.ipynb")
PREDICT = Step("generate_predictions", "50_generate_predictions.ipynb")
PERFORMANCE = Step("performance_analysis", "60_analyze_performance.ipynb")
EVALUATE = Step("evaluate_predictions", "70_evaluate_predictions.ipynb")
RESEARCH_BACKTEST = Step("research_backtest", "80_research_backtest.ipynb")
RESEARCH_POWER = Step("research_power", "81_detection_power.ipynb")

JOBS: dict[str, tuple[Step, ...]] = {
    "pipeline": (UPDATE_DATA, ANALYZE, OPTIMIZE, VALIDATE, PREDICT, PERFORMANCE),
    "data_update": (UPDATE_DATA,),
    "evaluation": (EVALUATE,),
    "research_backtest": (RESEARCH_BACKTEST,),  # research sweeps (shiol research ...), never scheduled
    "research_power": (RESEARCH_POWER,),
}
STEPS: dict[str, Step] = {s.name: s for s in (UPDATE_DATA, ANALYZE, OPTIMIZE, VALIDATE, PREDICT, PERFORMANCE, EVALUATE,
                                              RESEARCH_BACKTEST, RESEARCH_POWER)}


def find_step(name: str) -> Step:
    """A step by its name (``generate_predictions``) or notebook stem (``50_generate_predictions``)."""
    for step in STEPS.values():
        if name in (step.name, step.notebook, step.stem):
            return step
    known = ", ".join(f"{s.name} ({s.stem})" for s in STEPS.values())
    raise RunnerError(f"unknown step {name!r}; known steps: {known}")
