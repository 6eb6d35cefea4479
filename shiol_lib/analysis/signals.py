"""Step 2, adaptive analysis: how the number distribution drifted, and which feature families carried signal.

Drift: per-number frequency in the recent window and over the era, with chi-square tests against the
uniform distribution. A drawing takes 5 distinct white balls out of N, so the white counts are not
multinomial: Pearson's statistic is distributed as ``(N-5)/(N-1) * chi2(N-1)`` under uniformity, and is
rescaled by ``(N-1)/(N-5)`` before its p-value is read (the Powerball, one per drawing, needs no
correction).

Feature signal: for each feature family, a logistic regression on that family alone is fitted on the
target drawings before the recent window (time-ordered), then scored on the recent window, split into
contiguous sub-windows: log-loss improvement over the uniform baseline (positive = signal) and the rank
correlation between predicted probability and outcome. Stability is how consistently a family helps
across sub-windows. Plots return :class:`matplotlib.figure.Figure` objects (no pyplot state).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shiol_lib.analysis.features import KINDS, FeatureConfig, Kind, build_training_table, feature_family, feature_names
from shiol_lib.domain.game import WHITE_COUNT, matrix_for
from shiol_lib.domain.history import WHITE_COLUMNS, era_history, frame_before, next_target
from shiol_lib.errors import InsufficientHistoryError

log = logging.getLogger(__name__)
_EPS = 1e-12


def _resolve_target(frame: pd.DataFrame, target_date: date | None) -> date:
    return target_date if target_date is not None else next_target(frame)


def _chi_square(counts: np.ndarray, draws: int, picks: int) -> tuple[float, int, float]:
    size = len(counts)
    expected = draws * picks / size
    pearson = float(((counts - expected) ** 2 / expected).sum())
    statistic = pearson * (size - 1) / (size - picks)
    return statistic, size - 1, float(stats.chi2.sf(statistic, size - 1))


def compute_drift(
    frame: pd.DataFrame, *, recent: int = 50, target_date: date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-number recent vs era frequency, and chi-square tests against uniform for both windows.

    Uses the drawings of the era of ``target_date`` (default: the drawing after the last) dated before
    it. Returns ``(per_number, tests)``: ``per_number`` has ``kind, number, era_count, era_rate,
    recent_count, recent_rate, expected_rate, recent_z``; ``tests`` has ``kind, window, draws,
    statistic, df, p_value``.
    """
    target = _resolve_target(frame, target_date)
    matrix, era = era_history(frame, target)
    if len(era) < recent or recent < 1:
        raise InsufficientHistoryError(
            f"drift over the last {recent} drawings: the {matrix.name} era has {len(era)} before {target}",
            available=len(era),
            needed=recent,
        )
    rows, tests = [], []
    for kind in KINDS:
        size, picks = (matrix.white_max, WHITE_COUNT) if kind == "white" else (matrix.pb_max, 1)
        balls = era[WHITE_COLUMNS if kind == "white" else ["pb"]].to_numpy()
        era_counts = np.bincount(balls.ravel() - 1, minlength=size)
        recent_counts = np.bincount(balls[-recent:].ravel() - 1, minlength=size)
        p = picks / size
        z = (recent_counts - recent * p) / np.sqrt(recent * p * (1 - p))
        rows.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "number": np.arange(1, size + 1),
                    "era_count": era_counts,
                    "era_rate": era_counts / len(era),
                    "recent_count": recent_counts,
                    "recent_rate": recent_counts / recent,
                    "expected_rate": p,
                    "recent_z": z,
                }
            )
        )
        for window, counts, draws in (("recent", recent_counts, recent), ("era", era_counts, len(era))):
            statistic, df, p_value = _chi_square(counts, draws, picks)
            tests.append(
                {"kind": kind, "window": window, "draws": draws, "statistic": statistic, "df": df, "p_value": p_value}
            )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(tests)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def compute_feature_signal(
    frame: pd.DataFrame,
    *,
    kind: Kind = "white",
    target_date: date | None = None,
    recent: int = 52,
    sub_windows: int = 4,
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """Walk-forward signal of each feature family over the last ``recent`` targets, per sub-window.

    Rows: ``family, sub_window, first_date, last_date, targets, logloss_uniform, logloss_family,
    improvement`` (uniform minus family; > 0 means the family beat the uniform baseline out of sample)
    and ``spearman`` (rank correlation of predicted probability and outcome).
    """
    target = _resolve_target(frame, target_date)
    table = build_training_table(frame_before(frame, target), kind, config, until=target)
    dates = table["draw_date"].drop_duplicates().to_numpy()
    if len(dates) < recent + 30 or recent < sub_windows:
        raise InsufficientHistoryError(
            f"feature signal over {recent} targets needs {recent + 30} labelled targets (30 to fit on), "
            f"the era has {len(dates)}",
            available=len(dates),
            needed=recent + 30,
        )
    train = table.loc[table["draw_date"] < dates[-recent]]
    test = table.loc[table["draw_date"] >= dates[-recent]]
    matrix = matrix_for(target)
    base = WHITE_COUNT / matrix.white_max if kind == "white" else 1 / matrix.pb_max
    families: dict[str, list[str]] = {}
    for name in feature_names(kind, config):
        families.setdefault(feature_family(name), []).append(name)
    families["all"] = feature_names(kind, config)
    chunks = np.array_split(dates[-recent:], sub_windows)
    y_test = test["label"].to_numpy()
    rows = []
    for family, columns in families.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
        model.fit(train[columns].to_numpy(), train["label"].to_numpy())
        predicted = model.predict_proba(test[columns].to_numpy())[:, 1]
        for i, chunk in enumerate(chunks):
            mask = test["draw_date"].isin(chunk).to_numpy()
            y, p = y_test[mask], predicted[mask]
            uniform, fitted = _log_loss(np.full(len(y), base), y), _log_loss(p, y)
            rho = stats.spearmanr(p, y).statistic if np.ptp(p) > 0 else np.nan
            rows.append(
                {
                    "family": family,
                    "sub_window": i + 1,
                    "first_date": pd.Timestamp(chunk[0]),
                    "last_date": pd.Timestamp(chunk[-1]),
                    "targets": len(chunk),
                    "logloss_uniform": uniform,
                    "logloss_family": fitted,
                    "improvement": uniform - fitted,
                    "spearman": float(rho),
                }
            )
    return pd.DataFrame(rows)


def summarize_feature_signal(signal: pd.DataFrame) -> pd.DataFrame:
    """Per family: mean and spread of the improvement across sub-windows, share of sub-windows > 0."""
    grouped = signal.groupby("family", sort=False)
    return pd.DataFrame(
        {
            "mean_improvement": grouped["improvement"].mean(),
            "std_improvement": grouped["improvement"].std(ddof=1),
            "positive_share": grouped["improvement"].apply(lambda s: float((s > 0).mean())),
            "mean_spearman": grouped["spearman"].mean(),
        }
    ).reset_index()


@dataclass(frozen=True)
class AdaptiveAnalysis:
    """Results of step 2 (all DataFrames)."""

    drift: pd.DataFrame
    drift_tests: pd.DataFrame
    feature_signal: pd.DataFrame
    signal_summary: pd.DataFrame


def run_adaptive_analysis(
    frame: pd.DataFrame,
    *,
    target_date: date | None = None,
    recent: int = 50,
    signal_window: int = 52,
    sub_windows: int = 4,
    config: FeatureConfig = FeatureConfig(),
) -> AdaptiveAnalysis:
    """Step 2: drift tests and the walk-forward feature-family signal (white balls and Powerball)."""
    target = _resolve_target(frame, target_date)
    drift, tests = compute_drift(frame, recent=recent, target_date=target)
    signal = pd.concat(
        [
            compute_feature_signal(
                frame, kind=kind, target_date=target, recent=signal_window, sub_windows=sub_windows, config=config
            ).assign(kind=kind)
            for kind in KINDS
        ],
        ignore_index=True,
    )
    summary = pd.concat(
        [summarize_feature_signal(signal.loc[signal["kind"] == k]).assign(kind=k) for k in KINDS], ignore_index=True
    )
    log.info("adaptive analysis for %s: drift p-values %s", target, tests["p_value"].round(3).tolist())
    return AdaptiveAnalysis(drift, tests, signal, summary)


def plot_drift(drift: pd.DataFrame, kind: Kind = "white") -> Figure:
    """Bars of recent vs era frequency per number, with the uniform rate as a line."""
    data = drift.loc[drift["kind"] == kind]
    figure = Figure(figsize=(12, 4), layout="constrained")
    ax = figure.subplots()
    x = data["number"].to_numpy()
    ax.bar(x - 0.2, data["era_rate"], width=0.4, label="era")
    ax.bar(x + 0.2, data["recent_rate"], width=0.4, label="recent")
    ax.axhline(float(data["expected_rate"].iloc[0]), color="black", linewidth=1, label="uniform")
    ax.set_xlabel("number")
    ax.set_ylabel("draws per drawing")
    ax.set_title(f"{'White ball' if kind == 'white' else 'Powerball'} frequency: recent window vs era")
    ax.legend()
    return figure


def plot_feature_signal(signal: pd.DataFrame) -> Figure:
    """Log-loss improvement over uniform per feature family and sub-window (one panel per kind)."""
    kinds = list(signal["kind"].unique()) if "kind" in signal else ["white"]
    figure = Figure(figsize=(6 * len(kinds), 4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(kinds)))
    for ax, kind in zip(axes, kinds):
        data = signal.loc[signal["kind"] == kind] if "kind" in signal else signal
        for family, group in data.groupby("family", sort=False):
            ax.plot(group["sub_window"], group["improvement"], marker="o", label=family)
        ax.axhline(0.0, color="black", linewidth=1)
        ax.set_xticks(sorted(data["sub_window"].unique()))
        ax.set_xlabel("sub-window")
        ax.set_ylabel("log-loss improvement over uniform")
        ax.set_title(f"Feature signal ({kind})")
        ax.legend(fontsize="small")
    return figure
