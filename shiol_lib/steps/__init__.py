"""The steps as the notebooks call them: read the store, run the pure analysis, persist by run id.

Each function is one notebook's work in one call (``from shiol_lib import steps``). Inputs are the
notebook's parameters; outputs go to the store keyed by ``run_id`` (tickets, evaluations, artefacts, a
small ``metrics.<step>`` record) and are returned for the notebook to show. Later steps find earlier
steps' outputs through the run id. :mod:`.update` holds step 1, :mod:`.pipeline` the other pipeline
steps and the evaluation job, :mod:`.research` the research sweeps (imported when first used).
Importing the package loads pandas, DuckDB and the store; each step imports the analysis modules it
calls when it runs, and :func:`preload` imports them all ahead (a step kernel does, before its first cell).
"""

from typing import Any

from shiol_lib.steps.pipeline import (
    Performance,
    ScoringArtefacts,
    analyze_performance,
    analyze_signals,
    evaluate_predictions,
    generate_predictions,
    load_backtest_tickets,
    load_history,
    load_scoring,
    open_step_store,
    optimize_scoring,
    planted_bias_check,
    preload,
    resolve_target,
    save_metrics,
    show_findings,
    validate_history,
)
from shiol_lib.steps.update import check_update, draws_per_year, update_data, update_findings

_RESEARCH = ("ResearchOutcome", "detection_power", "research_backtest")


def __getattr__(name: str) -> Any:
    """The research names, imported on first use (they pull in matplotlib and scipy)."""
    if name in _RESEARCH:
        from shiol_lib.steps import research

        return getattr(research, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "analyze_performance",
    "analyze_signals",
    "check_update",
    "detection_power",
    "draws_per_year",
    "evaluate_predictions",
    "generate_predictions",
    "load_backtest_tickets",
    "load_history",
    "load_scoring",
    "open_step_store",
    "optimize_scoring",
    "Performance",
    "planted_bias_check",
    "preload",
    "research_backtest",
    "ResearchOutcome",
    "resolve_target",
    "save_metrics",
    "ScoringArtefacts",
    "show_findings",
    "update_data",
    "update_findings",
    "validate_history",
]
