"""Step 6: evaluate tickets against known drawings and compare them with the exact random baseline.

The baseline and the test of "no edge" live in :mod:`shiol_lib.analysis.baseline`.

Prize values use :func:`game.prize_value` for the current matrix (earlier eras had other prize tables:
their prize columns are left empty). The jackpot is valued at $0 in every prize figure and counted
separately (``jackpot`` column, ``PerformanceSummary.jackpots``): it is pari-mutuel and would swamp any
average.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from shiol_lib.analysis.baseline import EdgeTest, expected_prize, null_moments, run_edge_test, t_interval
from shiol_lib.domain.draws import draw_key
from shiol_lib.domain.game import (
    CURRENT_MATRIX,
    MATRICES,
    POWER_PLAY_PRICE,
    PRIZE_TIERS,
    WHITE_COUNT,
    Matrix,
    expected_white_matches,
    prize_tier,
    prize_value,
    tier_probability,
)
from shiol_lib.domain.history import NUMBER_COLUMNS, WHITE_COLUMNS, check_draw_frame, era_codes
from shiol_lib.errors import DrawFrameError

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "multiplier",
    "white_matches",
    "pb_match",
    "tier",
    "prize",
    "prize_power_play",
    "jackpot",
    "ticket_key",
    "draw_hash",
]
_DRAWN = ["d1", "d2", "d3", "d4", "d5", "dpb"]


def _check_tickets(tickets: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ["draw_date", *NUMBER_COLUMNS] if c not in tickets.columns]
    if missing:
        raise DrawFrameError(f"tickets frame lacks column(s) {missing}; it needs draw_date, n1..n5, pb")
    out = tickets.copy()
    out["draw_date"] = pd.to_datetime(out["draw_date"]).astype("datetime64[ns]")
    for column in NUMBER_COLUMNS:
        if out[column].isna().any():
            raise DrawFrameError(f"tickets column {column} has NaN/missing values")
        out[column] = out[column].astype("int64")
    return out


def ticket_keys(tickets: pd.DataFrame) -> pd.Series:
    """A stable key per ticket: ``YYYY-MM-DD:n1-n2-n3-n4-n5:pb`` (target date and numbers)."""
    t = _check_tickets(tickets)
    whites = np.sort(t[WHITE_COLUMNS].to_numpy(), axis=1)
    keys = [
        f"{d:%Y-%m-%d}:{'-'.join(f'{n:02d}' for n in w)}:{p:02d}" for d, w, p in zip(t["draw_date"], whites, t["pb"])
    ]
    return pd.Series(keys, index=tickets.index, name="ticket_key")


def draw_hashes(draws: pd.DataFrame) -> pd.Series:
    """Short SHA-256 of each drawing's numbers and multiplier (:func:`draw_key`), indexed by draw date."""
    checked = check_draw_frame(draws)
    values = [
        draw_key(d, nums, None if pd.isna(m) else int(m))
        for d, nums, m in zip(checked["draw_date"], checked[NUMBER_COLUMNS].to_numpy(), checked["multiplier"])
    ]
    return pd.Series(values, index=checked["draw_date"], name="draw_hash")


def evaluate_tickets(tickets: pd.DataFrame, draws: pd.DataFrame) -> pd.DataFrame:
    """Tickets whose drawing is in ``draws``, with matches, tier, prizes (jackpot as $0) and keys.

    Adds :data:`RESULT_COLUMNS` to the ticket columns: the drawing's ``multiplier``, ``white_matches``,
    ``pb_match``, ``tier`` (label such as ``3+PB``, empty when no prize), ``prize`` (no Power Play),
    ``prize_power_play`` (with the drawing's multiplier; empty when none was drawn), ``jackpot`` (5+PB),
    ``ticket_key``, ``draw_hash``.
    Tickets for drawings not in ``draws`` are left out (not yet drawn).
    """
    t = _check_tickets(tickets)
    t = t.drop(columns=[c for c in RESULT_COLUMNS if c in t.columns])
    checked = check_draw_frame(draws)
    drawn = checked.rename(columns=dict(zip(NUMBER_COLUMNS, _DRAWN)))
    drawn["draw_hash"] = draw_hashes(checked).to_numpy()
    merged = t.merge(drawn, on="draw_date", how="inner", suffixes=("", "_draw"))
    whites = merged[WHITE_COLUMNS].to_numpy()
    hits = (whites[:, :, None] == merged[_DRAWN[:5]].to_numpy()[:, None, :]).sum(axis=(1, 2))
    pb_match = (merged["pb"] == merged["dpb"]).to_numpy()
    current = era_codes(merged["draw_date"]) == len(MATRICES) - 1
    multipliers = merged["multiplier"].to_numpy(dtype=object)
    tiers, prizes, prizes_pp = [], [], []
    for w, p, cur, mult in zip(hits, pb_match, current, multipliers):
        tier = prize_tier(int(w), bool(p))
        tiers.append(tier.label if tier else "")
        prizes.append(prize_value(int(w), bool(p)) if cur else pd.NA)
        prizes_pp.append(prize_value(int(w), bool(p), multiplier=int(mult)) if cur and not pd.isna(mult) else pd.NA)
    out = merged[list(t.columns)].copy()
    out["multiplier"] = merged["multiplier"]
    out["white_matches"] = hits.astype("int64")
    out["pb_match"] = pb_match
    out["tier"] = pd.Series(tiers, dtype="string")
    out["prize"] = pd.array(prizes, dtype="Int64")
    out["prize_power_play"] = pd.array(prizes_pp, dtype="Int64")
    out["jackpot"] = (hits == WHITE_COUNT) & pb_match
    out["ticket_key"] = ticket_keys(out).to_numpy()
    out["draw_hash"] = merged["draw_hash"].to_numpy()
    return out


def select_unevaluated(
    tickets: pd.DataFrame, draws: pd.DataFrame, evaluated: pd.DataFrame, *, key_column: str | None = None
) -> pd.DataFrame:
    """Tickets whose drawing is known and that are new, or whose drawing changed since evaluation.

    ``evaluated`` holds the (``ticket_key``, ``draw_hash``) pairs already evaluated; ``key_column`` names
    the tickets' own key column (default: :func:`ticket_keys`).
    """
    t = tickets.copy()
    t["ticket_key"] = t[key_column].astype(str) if key_column else ticket_keys(t)
    hashes = draw_hashes(draws)
    dates = pd.to_datetime(t["draw_date"]).astype("datetime64[ns]")
    t["draw_hash"] = dates.map(hashes)
    known = t.loc[t["draw_hash"].notna()]
    done = set(zip(evaluated["ticket_key"].astype(str), evaluated["draw_hash"].astype(str)))
    fresh = [(k, h) not in done for k, h in zip(known["ticket_key"], known["draw_hash"])]
    return known.loc[fresh].drop(columns=["draw_hash"] + ([] if key_column else ["ticket_key"]))


def _coverages(group: pd.DataFrame, matrix: Matrix) -> tuple[np.ndarray, np.ndarray]:
    """Tickets holding each white ball and each Powerball (index 0 = number 1) in one drawing's tickets."""
    whites = group[WHITE_COLUMNS].to_numpy()
    return (
        np.bincount(whites.ravel() - 1, minlength=matrix.white_max),
        np.bincount(group["pb"].to_numpy() - 1, minlength=matrix.pb_max),
    )


def summarize_draws(evaluations: pd.DataFrame) -> pd.DataFrame:
    """One row per drawing: matches and prizes beside the exact random-ticket expectations."""
    rows = []
    for day, group in evaluations.groupby("draw_date", sort=True):
        matrix = MATRICES[int(era_codes(pd.Series([day]))[0])]
        white_cov, pb_cov = _coverages(group, matrix)
        null_mean, null_var = null_moments(white_cov, WHITE_COUNT)
        pb_mean, pb_var = null_moments(pb_cov, 1)
        mult = group["multiplier"].iloc[0] if "multiplier" in group else pd.NA
        n = len(group)
        current = matrix == CURRENT_MATRIX
        played = current and not pd.isna(mult)
        rows.append(
            {
                "draw_date": day,
                "tickets": n,
                "white_matches": int(group["white_matches"].sum()),
                "white_mean": group["white_matches"].mean(),
                "white_expected": float(expected_white_matches(matrix)),
                "null_mean": null_mean,
                "null_var": null_var,
                "pb_matches": int(group["pb_match"].sum()),
                "pb_null_mean": pb_mean,
                "pb_null_var": pb_var,
                "prize": float(group["prize"].sum()) if current else np.nan,
                "prize_expected": n * expected_prize(matrix) if current else np.nan,
                "prize_power_play": float(group["prize_power_play"].sum()) if played else np.nan,
                "prize_power_play_expected": n * expected_prize(matrix, int(mult)) if played else np.nan,
                "cost": n * matrix.ticket_price,
                "jackpots": int(group["jackpot"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _tier_table(evaluations: pd.DataFrame, matrix: Matrix) -> pd.DataFrame:
    n = len(evaluations)
    counts = evaluations["tier"].value_counts()
    rows = []
    for tier in PRIZE_TIERS:
        probability = float(tier_probability(tier.whites, tier.powerball, matrix))
        hits = int(counts.get(tier.label, 0))
        rows.append(
            {
                "tier": tier.label,
                "hits": hits,
                "rate": hits / n,
                "probability": probability,
                "expected_hits": n * probability,
            }
        )
    return pd.DataFrame(rows)


def _format_p(p: float) -> str:
    return f"{p:.2f}" if p >= 0.01 else f"{p:.2g}"


def _conclusion(
    per_draw: pd.DataFrame, matrix: Matrix, white_test: EdgeTest, pb_test: EdgeTest, alpha: float, edge: bool
) -> str:
    """The verdict in plain words, then the Powerball and prize figures beside their baselines."""
    n = int(per_draw["tickets"].sum())
    p = _format_p(white_test.p_value)
    verdict = (
        f"Evidence of an edge over random tickets at the {alpha:g} level (p = {p})"
        if edge
        else f"No evidence of an edge over random tickets (p = {p})"
    )
    cost = per_draw["cost"].sum()
    return (
        f"{verdict}; mean white matches {per_draw['white_matches'].sum() / n:.3f} vs "
        f"{float(expected_white_matches(matrix)):.3f} expected over {len(per_draw)} drawings and {n} tickets. "
        f"Powerball matches {per_draw['pb_matches'].sum() / n:.3f} vs {1 / matrix.pb_max:.3f} expected "
        f"(p = {_format_p(pb_test.p_value)}); prizes returned ${per_draw['prize'].sum() / cost:.3f} per $1 vs "
        f"${per_draw['prize_expected'].sum() / cost:.3f} expected (jackpot valued at $0; "
        f"{int(per_draw['jackpots'].sum())} jackpot hit(s))."
    )


@dataclass(frozen=True)
class PerformanceSummary:
    """Model tickets vs the exact random baseline (see :func:`summarize_performance`)."""

    n_draws: int
    n_tickets: int
    first_date: date
    last_date: date
    era: str
    white_mean: float
    white_expected: float
    white_ci: tuple[float, float]
    pb_rate: float
    pb_expected: float
    prize_per_dollar: float
    prize_per_dollar_expected: float
    prize_per_dollar_ci: tuple[float, float]
    power_play_per_dollar: float
    power_play_per_dollar_expected: float
    jackpots: int
    white_test: EdgeTest
    pb_test: EdgeTest
    alpha: float
    edge: bool
    conclusion: str
    tiers: pd.DataFrame = field(repr=False)
    per_draw: pd.DataFrame = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain Python values (tables as lists of records) for storage or JSON."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("tiers", "per_draw", "white_test", "pb_test")}
        out.update(
            white_test=self.white_test.__dict__,
            pb_test=self.pb_test.__dict__,
            tiers=self.tiers.to_dict("records"),
            first_date=self.first_date.isoformat(),
            last_date=self.last_date.isoformat(),
        )
        return out


def summarize_performance(
    evaluations: pd.DataFrame, *, alpha: float = 0.01, confidence: float = 0.95
) -> PerformanceSummary:
    """Per-tier hit rates, mean white matches (with a CI), prize per $ and a test of "no edge".

    ``evaluations`` is the output of :func:`evaluate_tickets` for one matrix era. Intervals are t
    intervals over drawings (the drawing is the independent unit). "Edge" means the one-sided
    :func:`run_edge_test` on white matches rejects at ``alpha``; the Powerball test is reported beside it.
    Prize figures value the jackpot at $0 and count it separately.
    """
    if evaluations.empty:
        raise DrawFrameError("no evaluated tickets to summarize (their drawings are not known yet?)")
    eras = np.unique(era_codes(evaluations["draw_date"]))
    if len(eras) != 1:
        raise DrawFrameError(f"evaluations span {len(eras)} matrix eras; summarize each era apart")
    matrix = MATRICES[int(eras[0])]
    per_draw = summarize_draws(evaluations)
    n = int(per_draw["tickets"].sum())
    white_mean = per_draw["white_matches"].sum() / n
    white_expected = float(expected_white_matches(matrix))
    coverages = [_coverages(group, matrix) for _, group in evaluations.groupby("draw_date", sort=True)]
    white_test = run_edge_test(
        per_draw["white_matches"].to_numpy(), [c[0] for c in coverages], WHITE_COUNT, "white-ball"
    )
    pb_test = run_edge_test(per_draw["pb_matches"].to_numpy(), [c[1] for c in coverages], 1, "Powerball")
    per_dollar = (per_draw["prize"] / per_draw["cost"]).to_numpy()
    prize_per_dollar = per_draw["prize"].sum() / per_draw["cost"].sum()
    played = per_draw["prize_power_play"].notna()
    pp_cost = (per_draw.loc[played, "tickets"] * (matrix.ticket_price + POWER_PLAY_PRICE)).sum()
    pp = per_draw.loc[played, "prize_power_play"].sum() / pp_cost if pp_cost else math.nan
    pp_expected = per_draw.loc[played, "prize_power_play_expected"].sum() / pp_cost if pp_cost else math.nan
    edge = white_test.p_value < alpha
    conclusion = _conclusion(per_draw, matrix, white_test, pb_test, alpha, edge)
    log.info("%s", conclusion)
    return PerformanceSummary(
        n_draws=len(per_draw),
        n_tickets=n,
        first_date=per_draw["draw_date"].iloc[0].date(),
        last_date=per_draw["draw_date"].iloc[-1].date(),
        era=matrix.name,
        white_mean=float(white_mean),
        white_expected=white_expected,
        white_ci=t_interval(per_draw["white_mean"].to_numpy(), float(white_mean), confidence),
        pb_rate=float(per_draw["pb_matches"].sum() / n),
        pb_expected=1 / matrix.pb_max,
        prize_per_dollar=float(prize_per_dollar),
        prize_per_dollar_expected=float(per_draw["prize_expected"].sum() / per_draw["cost"].sum()),
        prize_per_dollar_ci=t_interval(per_dollar, float(prize_per_dollar), confidence),
        power_play_per_dollar=float(pp),
        power_play_per_dollar_expected=float(pp_expected),
        jackpots=int(per_draw["jackpots"].sum()),
        white_test=white_test,
        pb_test=pb_test,
        alpha=alpha,
        edge=edge,
        conclusion=conclusion,
        tiers=_tier_table(evaluations, matrix),
        per_draw=per_draw,
    )
