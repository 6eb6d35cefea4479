"""Step 4: walk-forward backtest of the whole ticket pipeline over the history (never a random split).

For each target drawing of the test span (the last ``test_draws`` drawings), the draws are cut strictly
before the target and everything is built from that cut alone: at each refit drawing the model is
refitted and the weights re-optimized (their own tuning drawings also lie before it), then every target
up to the next refit gets tickets from them, evaluated against the target. Window: ``expanding`` (all
earlier targets of the era) or ``rolling`` (the most recent ``rolling_targets``).

Refit drawings (``refit_anchor``): ``window`` refits at the span's first target and every
``refit_every`` targets after it, so they move with the span; ``era`` refits at every ``refit_every``-th
drawing of the target's matrix era (counted from its first drawing), fixed drawings whatever the span, so
a target's tickets are the same in every run whose span holds it. With ``known`` results (see
:mod:`shiol_lib.analysis.replay`) a run replays only what no earlier run kept, and returns what it
computed to be kept. Refits are independent: ``workers=2`` computes them in this process and a helper
process (:mod:`.workers`), each on one thread, so the results do not depend on who computed them.

A model is fitted once per target date: when ``refit_every`` divides the weights' ``tune_draws``, a refit's
tuning model (fitted for its first tuning drawing) is an earlier refit's model, and is reused as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from shiol_lib.analysis import replay
from shiol_lib.analysis.evaluation import evaluate_tickets, summarize_draws
from shiol_lib.analysis.model import ModelConfig, NumberModel, fit_model
from shiol_lib.analysis.replay import Refit, ReplayEntry
from shiol_lib.analysis.research.workers import WorkerError, WorkerProcess
from shiol_lib.analysis.scoring import Weights
from shiol_lib.analysis.tickets import DEFAULT_TICKETS, generate_tickets
from shiol_lib.analysis.weights import OptimizedWeights, WeightConfig, optimize_weights, tuning_start
from shiol_lib.domain.game import matrix_for
from shiol_lib.domain.history import check_draw_frame, frame_before, prefix_hashes
from shiol_lib.errors import ArtefactError, InsufficientHistoryError

log = logging.getLogger(__name__)

Window = Literal["expanding", "rolling"]


def backtest_window(value: str) -> Window:
    """``value`` as a backtest window; raises ``ValueError`` naming it unless ``expanding`` or ``rolling``."""
    if value not in get_args(Window):
        raise ValueError(f"window must be 'expanding' or 'rolling', not {value!r}")
    return cast(Window, value)


@dataclass(frozen=True)
class BacktestConfig:
    """Span, refit cadence and anchor, window and the model / weight settings of a backtest."""

    test_draws: int = 52  # the last drawings of the history, each predicted walk-forward
    refit_every: int = 13  # refit the model and re-optimize the weights every k targets
    window: Window = "expanding"
    rolling_targets: int = 300  # training targets kept when window == "rolling"
    n_tickets: int = DEFAULT_TICKETS
    optimize: bool = True  # False: use weights.start as they are (no tuning)
    model: ModelConfig = field(default_factory=ModelConfig)
    weights: WeightConfig = field(default_factory=WeightConfig)
    refit_anchor: Literal["window", "era"] = "window"  # refits move with the span, or fixed era drawings

    def model_config(self) -> ModelConfig:
        """The model settings with the window applied."""
        if self.window == "rolling":
            return replace(self.model, train_window=self.rolling_targets)
        if self.window != "expanding":
            raise ValueError(f"window must be 'expanding' or 'rolling', not {self.window!r}")
        return self.model

    def replay_settings(self) -> dict[str, Any]:
        """Every setting a target's tickets depend on (all but the span's length), as plain JSON."""
        settings = asdict(replace(self, model=self.model_config()))
        settings.pop("test_draws")
        return settings


@dataclass(frozen=True)
class BacktestResult:
    """Tickets, their evaluations, one row per drawing, one row per refit; what was kept and computed."""

    tickets: pd.DataFrame
    evaluations: pd.DataFrame
    per_draw: pd.DataFrame
    refits: pd.DataFrame
    seconds: float
    reused_targets: int = 0  # targets whose tickets came from ``known``
    computed: list[ReplayEntry] = field(default_factory=list)  # new results to keep (with ``known``)


@dataclass(frozen=True)
class RefitGroup:
    """One refit drawing and the targets of the span that use its model and weights."""

    anchor: date
    targets: tuple[date, ...]
    refit_key: str = ""
    ticket_keys: tuple[str, ...] = ()


def ticket_seed(seed: int, ordinal: int) -> int:
    """The ticket seed of one target, derived from the run seed and the target's date ordinal."""
    return int(np.random.SeedSequence([seed, ordinal]).generate_state(1)[0])


def _test_targets(checked: pd.DataFrame, test_draws: int) -> list[date]:
    if test_draws < 1:
        raise ValueError(f"test_draws must be at least 1, got {test_draws}")
    if len(checked) < test_draws:
        raise InsufficientHistoryError(
            f"backtest over {test_draws} drawings asked, the history has {len(checked)}",
            available=len(checked),
            needed=test_draws,
        )
    targets = [d.date() for d in checked["draw_date"].iloc[-test_draws:]]
    matrix = matrix_for(targets[-1])
    if targets[0] < matrix.first_date:
        era_count = int((checked["draw_date"].dt.date >= matrix.first_date).sum())
        raise InsufficientHistoryError(
            f"the test span of {test_draws} drawings crosses into the {matrix.name} era, which has only "
            f"{era_count} drawings; choose test_draws well below that",
            available=era_count,
            needed=test_draws,
        )
    return targets


def plan_refits(frame: pd.DataFrame, config: BacktestConfig, *, seed: int | None = None) -> list[RefitGroup]:
    """The refit drawings of the span and their targets; with ``seed``, the keys of their results too."""
    if config.refit_every < 1:
        raise ValueError(f"refit_every must be at least 1, got {config.refit_every}")
    config.model_config()  # refuse an unknown window before any work
    checked = check_draw_frame(frame)
    targets = _test_targets(checked, config.test_draws)
    if config.refit_anchor == "window":
        anchors = [targets[i - i % config.refit_every] for i in range(len(targets))]
    elif config.refit_anchor == "era":
        days = checked["draw_date"].dt.date.tolist()
        first = days.index(next(d for d in days if d >= matrix_for(targets[-1]).first_date))
        start = len(days) - len(targets)
        anchors = [
            days[first + (i - first) // config.refit_every * config.refit_every] for i in range(start, len(days))
        ]
    else:
        raise ValueError(f"refit_anchor must be 'window' or 'era', not {config.refit_anchor!r}")
    groups: dict[date, list[date]] = {}
    for anchor, target in zip(anchors, targets, strict=True):
        groups.setdefault(anchor, []).append(target)
    if seed is None:
        return [RefitGroup(anchor, tuple(days)) for anchor, days in groups.items()]
    settings = config.replay_settings()
    hashes = prefix_hashes(checked, [*groups, *targets])
    out = []
    for anchor, days in groups.items():
        key = replay.refit_key(anchor=anchor, history_hash=hashes[anchor], seed=seed, settings=settings)
        ticket_keys = tuple(
            replay.tickets_key(refit=key, target=t, history_hash=hashes[t], n_tickets=config.n_tickets) for t in days
        )
        out.append(RefitGroup(anchor, tuple(days), key, ticket_keys))
    return out


def replay_keys(frame: pd.DataFrame, *, config: BacktestConfig = BacktestConfig(), seed: int = 0) -> list[str]:
    """Every key whose kept result a run of :func:`run_backtest` with these inputs can use."""
    return [k for g in plan_refits(frame, config, seed=seed) for k in (g.refit_key, *g.ticket_keys)]


def _fit_refit(
    checked: pd.DataFrame, config: BacktestConfig, seed: int, anchor: date, fitted: dict[date, NumberModel]
) -> Refit:
    """The model and weights of one refit drawing (models shared through ``fitted``, one per date)."""
    model_config = config.model_config()

    def model_for(day: date) -> NumberModel:
        if day not in fitted:
            fitted[day] = fit_model(checked, target_date=day, config=model_config, seed=seed)
        return fitted[day]

    weights: OptimizedWeights | Weights = config.weights.start
    model = model_for(anchor)
    if config.optimize:
        history = frame_before(checked, anchor)
        first = tuning_start(history, anchor, config=config.weights, model_config=model_config)
        weights = optimize_weights(
            history,
            target_date=anchor,
            config=config.weights,
            model_config=model_config,
            seed=seed,
            tuning_model=model_for(first),
        )
    return Refit(anchor, model, weights)


def _replay_group(
    checked: pd.DataFrame,
    config: BacktestConfig,
    seed: int,
    anchor: date,
    targets: tuple[date, ...],
    refit: Refit | None,
    fitted: dict[date, NumberModel] | None = None,
) -> tuple[Refit, list[pd.DataFrame]]:
    """One refit (fitted unless given) and the tickets of ``targets``, on one thread (a helper process runs it too)."""
    with threadpool_limits(limits=1):
        if refit is None:
            refit = _fit_refit(checked, config, seed, anchor, {} if fitted is None else fitted)
        tickets = [
            generate_tickets(
                frame_before(checked, t),
                refit.model,
                refit.weights,
                t,
                config.n_tickets,
                seed=ticket_seed(seed, t.toordinal()),
            )
            for t in targets
        ]
    for target in targets:
        log.debug("backtest target %s done", target)
    return refit, tickets


def _decoded(known: Mapping[str, bytes], key: str, decode: Any, *args: Any) -> Any:
    """A kept result decoded, or None when there is none or it cannot be read (then it is recomputed)."""
    payload = known.get(key)
    if payload is None:
        return None
    try:
        return decode(payload, *args)
    except ArtefactError as err:
        log.warning("%s; computing it again", err)
        return None


def run_backtest(
    frame: pd.DataFrame,
    *,
    config: BacktestConfig = BacktestConfig(),
    seed: int = 0,
    known: Mapping[str, bytes] | None = None,
    workers: int = 1,
) -> BacktestResult:
    """Step 4: walk-forward backtest of the last ``config.test_draws`` drawings (see the module doc).

    ``known``: kept results by key (:func:`replay_keys`); given (even empty), the result lists what it
    computed in ``computed``. ``workers``: 2 fits refits in this process and a helper process too.
    """
    started = time.perf_counter()
    checked = check_draw_frame(frame)
    groups = plan_refits(checked, config, seed=seed if known is not None else None)
    refits: dict[date, Refit] = {}
    tickets: dict[date, pd.DataFrame] = {}
    todo = _take_kept(groups, known if known is not None else {}, refits, tickets)
    computed = _compute(checked, config, seed, [(g.anchor, days, r) for g, days, r in todo], workers)
    entries: list[ReplayEntry] = []
    for (group, days, had), (refit, made) in zip(todo, computed, strict=True):
        refits[group.anchor] = refit
        tickets.update(zip(days, made, strict=True))
        if known is not None:
            entries += _new_entries(group, days, refit if had is None else None, made)
    targets = [t for g in groups for t in g.targets]
    all_tickets = pd.concat([tickets[t] for t in targets], ignore_index=True)
    evaluations = evaluate_tickets(all_tickets, checked)
    rows = pd.DataFrame([_refit_row(g.anchor, refits[g.anchor]) for g in groups])
    seconds = time.perf_counter() - started
    reused = len(targets) - sum(len(days) for _, days, _ in todo)
    log.info(
        "backtest of %d drawings (%s..%s) in %.1f s: %d refit(s) computed, %d target(s) kept from earlier runs",
        len(targets),
        targets[0],
        targets[-1],
        seconds,
        sum(r is None for _, _, r in todo),
        reused,
    )
    return BacktestResult(all_tickets, evaluations, summarize_draws(evaluations), rows, seconds, reused, entries)


_Todo = tuple[RefitGroup, tuple[date, ...], Refit | None]  # a group, its targets to compute, its kept refit


def _take_kept(
    groups: list[RefitGroup], kept: Mapping[str, bytes], refits: dict[date, Refit], tickets: dict[date, pd.DataFrame]
) -> list[_Todo]:
    """Fill ``refits`` and ``tickets`` from the kept results; returns what is left to compute, by group."""
    todo: list[_Todo] = []
    for group in groups:
        for key, target in zip(group.ticket_keys, group.targets):  # no keys without kept results
            found = _decoded(kept, key, replay.decode_tickets, target)
            if found is not None:
                tickets[target] = found
        refit = _decoded(kept, group.refit_key, replay.decode_refit)
        missing = tuple(t for t in group.targets if t not in tickets)
        if refit is None or missing:
            todo.append((group, missing, refit))
        else:
            refits[group.anchor] = refit
    return todo


def _new_entries(
    group: RefitGroup, days: tuple[date, ...], new_refit: Refit | None, made: list[pd.DataFrame]
) -> list[ReplayEntry]:
    """What a group computed, as entries to keep: its refit (when it was fitted now) and its targets' tickets."""
    entries = []
    if new_refit is not None:
        entries.append(ReplayEntry(group.refit_key, "refit", group.anchor, replay.encode_refit(new_refit)))
    key_of = dict(zip(group.targets, group.ticket_keys, strict=True))
    return entries + [ReplayEntry(key_of[t], "tickets", t, replay.encode_tickets(m)) for t, m in zip(days, made)]


def _compute(
    checked: pd.DataFrame,
    config: BacktestConfig,
    seed: int,
    todo: list[tuple[date, tuple[date, ...], Refit | None]],
    workers: int,
) -> list[tuple[Refit, list[pd.DataFrame]]]:
    """Replay each (refit drawing, targets, refit or None) of ``todo``: here, and in a helper process.

    The helper (:mod:`.workers`) is used only when two refits or more are to be fitted. It takes the groups
    from the end, this process from the start, until they meet, so neither waits while work is left. A
    helper that cannot start or dies leaves its groups to this process.
    """
    fitted: dict[date, NumberModel] = {}
    if workers < 2 or sum(refit is None for _, _, refit in todo) < 2:
        return [_replay_group(checked, config, seed, anchor, days, refit, fitted) for anchor, days, refit in todo]
    done: dict[int, tuple[Refit, list[pd.DataFrame]]] = {}
    ends = [0, len(todo) - 1]  # the next group from the start, the next from the end
    lock = threading.Lock()
    failed: list[BaseException] = []

    def claim(side: int) -> int | None:
        with lock:
            if ends[0] > ends[1]:
                return None
            index = ends[side]
            ends[side] += 1 if side == 0 else -1
            return index

    def helper() -> None:
        try:
            with WorkerProcess() as worker:
                while (i := claim(1)) is not None:
                    done[i] = worker.call(_replay_group, checked, config, seed, *todo[i])
        except WorkerError as err:
            log.warning("%s; this process replays the rest", err)
        except BaseException as err:  # noqa: BLE001 - raised in the calling thread below
            failed.append(err)

    thread = threading.Thread(target=helper, name="backtest-helper", daemon=True)
    thread.start()
    while (i := claim(0)) is not None:
        done[i] = _replay_group(checked, config, seed, *todo[i], fitted)
    thread.join()
    if failed:
        raise failed[0]
    for i in range(len(todo)):  # what a failed helper left
        if i not in done:
            done[i] = _replay_group(checked, config, seed, *todo[i], fitted)
    return [done[i] for i in range(len(todo))]


def _refit_row(target: date, refit: Refit) -> dict[str, object]:
    weights = refit.weights
    if isinstance(weights, OptimizedWeights):
        w, objective, start_objective = weights.weights, weights.objective, weights.start_objective
    else:
        w, objective, start_objective = weights, np.nan, np.nan
    meta = refit.model.meta
    return {
        "refit_target": pd.Timestamp(target),
        "train_first_target": pd.Timestamp(meta.train_first_target),
        "train_last_target": pd.Timestamp(meta.train_last_target),
        "train_targets": meta.n_train_targets,
        "w_model": w.model,
        "w_diversity": w.diversity,
        "w_shape": w.shape,
        "objective": objective,
        "start_objective": start_objective,
    }
