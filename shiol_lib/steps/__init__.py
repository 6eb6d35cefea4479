"""The steps as the notebooks call them: read the store, run the pure analysis, persist by run id.

Each function is one notebook's work in one call (``from shiol_lib import steps``). Inputs are the
notebook's parameters; outputs go to the store keyed by ``run_id`` (tickets, evaluations, artefacts, a
small ``metrics.<step>`` record) and are returned for the notebook to show. Later steps find earlier
steps' outputs through the run id. :mod:`.pipeline` holds the six pipeline steps and the evaluation job,
:mod:`.research` the research sweeps.
"""

from shiol_lib.steps.pipeline import (
    Performance,
    ScoringArtefacts,
    analyze_performance,
    analyze_signals,
    check_update,
    draws_per_year,
    evaluate_predictions,
    generate_predictions,
    load_backtest_tickets,
    load_history,
    load_scoring,
    open_step_store,
    optimize_scoring,
    planted_bias_check,
    resolve_target,
    save_metrics,
    show_findings,
    update_data,
    update_findings,
    validate_history,
)
from shiol_lib.steps.research import ResearchOutcome, detection_power, research_backtest

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
