"""Figures and tables for the step reports: pure functions of frames, each returning a matplotlib Figure.

Object API only (``Figure``, never ``pyplot``), so a figure belongs to no global state and renders the
same in a kernel, a test or a worker. :func:`table` formats a frame for reading: no index, three
significant figures, dates as dates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from shiol_lib.analysis.evaluation import PerformanceSummary
from shiol_lib.domain.game import CURRENT_MATRIX, MATRICES, WHITE_COUNT, Matrix
from shiol_lib.domain.history import WHITE_COLUMNS, era_codes

BLUE, RED, GREY = "#4472c4", "#c0392b", "#57606a"


def table(frame: pd.DataFrame, digits: int = 3) -> Any:
    """A pandas Styler of ``frame``: no index, floats to ``digits`` significant figures, dates as dates."""
    shown = frame.reset_index() if _named_index(frame) else frame.reset_index(drop=True)
    formats: dict[str, Any] = {}
    for column in shown.columns:
        kind = shown[column].dtype
        if pd.api.types.is_float_dtype(kind):
            formats[column] = lambda v, d=digits: "" if pd.isna(v) else f"{v:.{d}g}"
        elif pd.api.types.is_datetime64_any_dtype(kind):
            formats[column] = lambda v: "" if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")
    return shown.style.format(formats).hide(axis="index")


def _named_index(frame: pd.DataFrame) -> bool:
    return any(name is not None for name in frame.index.names)


def _era_rates(frame: pd.DataFrame) -> list[tuple[Matrix, pd.DataFrame]]:
    """Per era present in ``frame``: its draws (tagged by date)."""
    codes = era_codes(frame["draw_date"])
    return [(MATRICES[int(code)], frame.loc[codes == code]) for code in np.unique(codes)]


def _heatmap(
    ax: Any,
    rows: list[np.ndarray],
    labels: list[str],
    title: str,
    cbar_label: str,
    figure: Figure,
    vmin: float,
    vmax: float,
) -> None:
    width = max(len(r) for r in rows)
    grid = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        grid[i, : len(row)] = row
    image = ax.imshow(
        grid,
        aspect="auto",
        cmap="coolwarm",
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        extent=(0.5, width + 0.5, len(rows) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlabel("number")
    ax.set_title(title)
    figure.colorbar(image, ax=ax, label=cbar_label, shrink=0.9)


def frequency_heatmap(frame: pd.DataFrame) -> Figure:
    """How often each number was drawn in each matrix era, relative to the uniform rate (1 = as expected)."""
    eras = _era_rates(frame)
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    white_ax, pb_ax = figure.subplots(2, 1, height_ratios=(1, 1))
    white_rows, pb_rows, labels = [], [], []
    for matrix, draws in eras:
        whites = np.bincount(draws[WHITE_COLUMNS].to_numpy().ravel(), minlength=matrix.white_max + 1)[1:]
        pbs = np.bincount(draws["pb"].to_numpy(), minlength=matrix.pb_max + 1)[1:]
        white_rows.append(whites / (len(draws) * WHITE_COUNT / matrix.white_max))
        pb_rows.append(pbs / (len(draws) / matrix.pb_max))
        labels.append(f"{matrix.name} ({len(draws)} draws)")
    _heatmap(white_ax, white_rows, labels, "White balls: frequency / uniform rate, by era", "ratio", figure, 0.5, 1.5)
    _heatmap(pb_ax, pb_rows, labels, "Powerball: frequency / uniform rate, by era", "ratio", figure, 0.5, 1.5)
    return figure


def _mean_gaps(draws: pd.DataFrame, columns: list[str], top: int) -> np.ndarray:
    """Mean number of drawings between appearances of each number 1..``top`` (NaN when seen < 2 times)."""
    values = draws[columns].to_numpy()
    gaps = np.full(top, np.nan)
    for number in range(1, top + 1):
        seen = np.flatnonzero((values == number).any(axis=1))
        if len(seen) >= 2:
            gaps[number - 1] = float(np.diff(seen).mean())
    return gaps


def gap_heatmap(frame: pd.DataFrame) -> Figure:
    """Mean gap between appearances of each number per era, relative to the uniform expectation."""
    figure = Figure(figsize=(12, 4.2), layout="constrained")
    white_ax, pb_ax = figure.subplots(2, 1)
    white_rows, pb_rows, labels = [], [], []
    for matrix, draws in _era_rates(frame):
        white_rows.append(_mean_gaps(draws, WHITE_COLUMNS, matrix.white_max) / (matrix.white_max / WHITE_COUNT))
        pb_rows.append(_mean_gaps(draws, ["pb"], matrix.pb_max) / matrix.pb_max)
        labels.append(f"{matrix.name} ({len(draws)} draws)")
    _heatmap(white_ax, white_rows, labels, "White balls: mean gap / expected gap, by era", "ratio", figure, 0.5, 1.5)
    _heatmap(pb_ax, pb_rows, labels, "Powerball: mean gap / expected gap, by era", "ratio", figure, 0.5, 1.5)
    return figure


def drift(drift_frame: pd.DataFrame) -> Figure:
    """Recent vs era frequency per number, white balls and Powerball, each beside the uniform rate."""
    figure = Figure(figsize=(12, 6.5), layout="constrained")
    for ax, kind, title in zip(figure.subplots(2, 1), ("white", "pb"), ("White balls", "Powerball"), strict=True):
        data = drift_frame.loc[drift_frame["kind"] == kind]
        x = data["number"].to_numpy()
        ax.bar(x - 0.2, data["era_rate"], width=0.4, label="era", color=BLUE)
        ax.bar(x + 0.2, data["recent_rate"], width=0.4, label="recent window", color="#ed7d31")
        ax.axhline(float(data["expected_rate"].iloc[0]), color="black", linewidth=1, label="uniform")
        ax.set_xlabel("number")
        ax.set_ylabel("draws per drawing")
        ax.set_title(f"{title}: recent window vs era")
        ax.legend(fontsize="small")
    return figure


def backtest_hits(summary: PerformanceSummary) -> Figure:
    """Mean white matches per ticket for each drawing, the exact baseline and the CI of the overall mean."""
    per_draw = summary.per_draw
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.plot(
        per_draw["draw_date"],
        per_draw["white_mean"],
        marker="o",
        markersize=3,
        color=BLUE,
        label="model tickets, each drawing",
    )
    ax.axhline(
        summary.white_expected, color=RED, linestyle="--", label=f"random tickets ({summary.white_expected:.3f})"
    )
    ax.axhspan(*summary.white_ci, color=BLUE, alpha=0.15, label=f"95% CI of the mean {summary.white_mean:.3f}")
    ax.set_ylabel("white matches per ticket")
    ax.set_title(f"Walk-forward backtest, {summary.n_draws} drawings: p = {summary.white_test.p_value:.2g}")
    ax.legend(fontsize="small", loc="upper left")
    return figure


def prize_per_dollar(summary: PerformanceSummary) -> Figure:
    """Prize returned per $ by the model's tickets (with CI) beside the random-ticket baseline."""
    figure = Figure(figsize=(6, 3.4), layout="constrained")
    ax = figure.subplots()
    low, high = summary.prize_per_dollar_ci
    value = summary.prize_per_dollar
    ax.bar([0], [value], color=BLUE, yerr=[[value - low], [high - value]], capsize=8, label="model tickets")
    ax.bar([1], [summary.prize_per_dollar_expected], color=GREY, label="random tickets (exact)")
    ax.set_xticks([0, 1], ["model tickets\n(95% CI)", "random tickets"])
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_ylabel(r"prize per \$1 (jackpot at \$0)")
    ax.set_title("Prize per $ against the random baseline")
    return figure


def ticket_coverage(tickets: pd.DataFrame, matrix: Matrix = CURRENT_MATRIX) -> Figure:
    """How often each white ball and Powerball appears in the tickets, beside an even spread."""
    n = len(tickets)
    whites = np.bincount(tickets[WHITE_COLUMNS].to_numpy().ravel(), minlength=matrix.white_max + 1)[1:]
    pbs = np.bincount(tickets["pb"].to_numpy(), minlength=matrix.pb_max + 1)[1:]
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    white_ax, pb_ax = figure.subplots(2, 1)
    white_ax.bar(np.arange(1, matrix.white_max + 1), whites, color=BLUE)
    white_ax.axhline(n * WHITE_COUNT / matrix.white_max, color=RED, linestyle="--", label="even spread")
    white_ax.set_title(f"White balls in the {n} tickets ({int((whites > 0).sum())} of {matrix.white_max} used)")
    pb_ax.bar(np.arange(1, matrix.pb_max + 1), pbs, color=BLUE)
    pb_ax.axhline(n / matrix.pb_max, color=RED, linestyle="--", label="even spread")
    pb_ax.set_title(f"Powerballs in the tickets ({int((pbs > 0).sum())} of {matrix.pb_max} used)")
    for ax in (white_ax, pb_ax):
        ax.set_xlabel("number")
        ax.set_ylabel("tickets")
        ax.legend(fontsize="small")
    return figure
