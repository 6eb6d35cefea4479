"""What each step found, in plain words with the figures that matter, as Markdown for the report.

Each function takes a step's results and returns a short Markdown text; the notebooks display it in a
cell tagged ``findings``, which the report shows first.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from shiol_lib.analysis.evaluation import PerformanceSummary
from shiol_lib.analysis.signals import AdaptiveAnalysis
from shiol_lib.analysis.weights import OptimizedWeights
from shiol_lib.domain.spans import TargetSpan

ALPHA = 0.01


def _p(p: float) -> str:
    return f"{p:.2f}" if p >= 0.01 else f"{p:.2g}"


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def signal_findings(analysis: AdaptiveAnalysis, alpha: float = ALPHA) -> str:
    """Drift p-values of white balls and Powerball, and the feature family with the most signal."""
    tests = analysis.drift_tests
    lines = []
    for kind, label in (("white", "White balls"), ("pb", "Powerball")):
        rows = tests.loc[tests["kind"] == kind].set_index("window")
        if "recent" not in rows.index:
            continue
        recent = rows.loc["recent"]
        verdict = "drift beyond chance" if recent["p_value"] < alpha else "no drift beyond chance"
        era = f"; whole era p = {_p(float(rows.loc['era', 'p_value']))}" if "era" in rows.index else ""
        lines.append(
            f"**{label}**: {verdict} in the last {int(recent['draws'])} drawings "
            f"(chi-square p = {_p(float(recent['p_value']))}{era})."
        )
    summary = analysis.signal_summary
    for kind, label in (("white", "white balls"), ("pb", "Powerball")):
        part = summary.loc[summary["kind"] == kind]
        if part.empty:
            continue
        best = part.loc[part["mean_improvement"].idxmax()]
        lines.append(
            f"Best feature family for {label}: **{best['family']}**, log-loss improvement over uniform "
            f"{best['mean_improvement']:.2g} (positive in {best['positive_share']:.0%} of sub-windows): "
            "as small as chance allows."
        )
    return _bullets(lines)


def weight_findings(weights: OptimizedWeights, target: date) -> str:
    """The chosen weights and what the objective gained."""
    chosen = ", ".join(f"{name} {value:.3g}" for name, value in vars(weights.weights).items())
    return _bullets(
        [
            f"Chosen weights: **{chosen}** (from {', '.join(f'{v:.3g}' for v in vars(weights.start).values())}).",
            f"Walk-forward objective (smoothed expected white matches per ticket): {weights.start_objective:.4f} -> "
            f"**{weights.objective:.4f}**; random tickets expect {25 / 69:.4f}.",
            f"Tuned on drawings {weights.tune_first} .. {weights.tune_last} ({weights.evaluations} evaluations); "
            f"the model and weights are for the drawing of **{target}**.",
        ]
    )


def performance_findings(summary: PerformanceSummary, *, what: str = "Walk-forward backtest") -> str:
    """The "no edge" verdict with its p-value and CI, the Powerball and the prize per $."""
    verdict = "**Evidence of an edge**" if summary.edge else "**No evidence of an edge**"
    low, high = summary.white_ci
    plow, phigh = summary.prize_per_dollar_ci
    return _bullets(
        [
            f"{what}, {summary.n_draws} drawings ({summary.first_date} .. {summary.last_date}), "
            f"{summary.n_tickets} tickets: {verdict} over random tickets (p = {_p(summary.white_test.p_value)}, "
            f"one-sided, alpha {summary.alpha:g}).",
            f"Mean white matches per ticket **{summary.white_mean:.3f}** (95% CI {low:.3f} .. {high:.3f}) vs "
            f"{summary.white_expected:.3f} for random tickets.",
            f"Powerball matches {summary.pb_rate:.3f} per ticket vs {summary.pb_expected:.3f} "
            f"(p = {_p(summary.pb_test.p_value)}).",
            f"Prize per \\$1 **{summary.prize_per_dollar:.3f}** (95% CI {plow:.3f} .. {phigh:.3f}) vs "
            f"{summary.prize_per_dollar_expected:.3f} for random tickets (jackpot valued at \\$0; "
            f"{summary.jackpots} jackpot hit(s)).",
        ]
    )


def prediction_findings(tickets: pd.DataFrame, white_max: int = 69, pb_max: int = 26) -> str:
    """How many tickets for which drawing, and how much of the number range they cover."""
    whites = pd.unique(tickets[["n1", "n2", "n3", "n4", "n5"]].to_numpy().ravel())
    target = pd.Timestamp(tickets["draw_date"].iloc[0]).date()
    top = tickets.iloc[0]
    return _bullets(
        [
            f"**{len(tickets)} distinct tickets** for the drawing of **{target}**, ranked by score.",
            f"They use {len(whites)} of {white_max} white balls and {tickets['pb'].nunique()} of {pb_max} Powerballs.",
            f"Top ticket: {' '.join(str(int(top[c])) for c in ('n1', 'n2', 'n3', 'n4', 'n5'))} + PB {int(top['pb'])}.",
            "Drawings are random: these tickets are no more likely to win than any others (see step 6).",
        ]
    )


def evaluation_findings(new: pd.DataFrame, evaluations: pd.DataFrame) -> str:
    """How many tickets were evaluated now and in all, and their mean white matches."""
    lines = [f"Newly evaluated tickets: **{len(new)}**; evaluated in all: {len(evaluations)}."]
    if len(evaluations):
        lines.append(
            f"Mean white matches of all evaluated tickets {evaluations['white_matches'].mean():.3f} "
            f"vs {25 / 69:.3f} for random tickets; prizes won \\${evaluations['prize'].sum():,.0f}."
        )
    return _bullets(lines)


def research_backtest_findings(figures: pd.DataFrame, span: TargetSpan, alpha: float = ALPHA) -> str:
    """Per configuration the "no edge" verdict of the sweep, and the drawings skipped for too little history."""
    lines = [
        f"Backtested **{len(span.targets)} drawings** ({span.first_target} .. {span.targets[-1]}) of the "
        f"{span.first} .. {span.last} span asked."
    ]
    skipped = span.skipped_summary()
    if skipped["drawings"]:
        lines.append(
            f"**Skipped {skipped['drawings']} drawing(s)** ({skipped['from']} .. {skipped['to']}): {skipped['reason']}."
        )
    for row in figures.itertuples():
        verdict = "**evidence of an edge**" if row.edge else "**no evidence of an edge**"
        lines.append(
            f"`{row.configuration}` ({row.seeds} seed(s), {row.tickets} tickets): {verdict} "
            f"(p = {_p(row.p_value)}, one-sided, alpha {alpha:g}); mean white matches "
            f"{row.mean_white_matches:.3f} (95% CI {row.ci_low:.3f} .. {row.ci_high:.3f}) vs "
            f"{row.expected_white_matches:.3f} for random tickets."
        )
    return _bullets(lines)
