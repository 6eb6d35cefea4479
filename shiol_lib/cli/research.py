"""``shiol research backtest`` and ``shiol research power``: research sweeps run as archived jobs.

The cluster address is checked before the run opens (an unreachable one exits 2 with nothing recorded);
the notebook gets it as a parameter and stores its figures as metrics, read back here from the manifest.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from shiol_lib.cli.common import fail, open_existing_store
from shiol_lib.domain.engines import ENGINES, require_engine, resolve_cluster
from shiol_lib.domain.runs import ExitCode, RunStatus
from shiol_lib.domain.spans import RESEARCH_HISTORY_NEEDED
from shiol_lib.errors import ClusterError, InsufficientHistoryError, ParameterError, ShiolError
from shiol_lib.jobs.catalog import RESEARCH_BACKTEST_JOB, RESEARCH_POWER_JOB, JobDefinition
from shiol_lib.settings import Settings

_CLUSTER_HELP = (
    "'none' (in-process, default), 'local' (a two-worker LocalCluster) or a scheduler address "
    "tcp://host:port (default: SHIOL_DASK_ADDRESS)."
)


@click.group("research")
def research_group() -> None:
    """Research sweeps (walk-forward backtests, detection power) on one machine or a Dask cluster."""


def check_cluster(cluster: str, *, timeout_s: float = 5.0) -> None:
    """Raise :class:`ClusterError` naming ``cluster`` unless it is ``none``, ``local`` or a live scheduler."""
    if require_engine(cluster) in ENGINES:
        return
    from distributed import Client

    try:
        client = Client(cluster, timeout=timeout_s)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {cluster} within {timeout_s:g} s ({err}); "
            "start it (dask scheduler) or pass --cluster none",
            address=cluster,
        ) from err
    client.close()


def _check_span(settings: Settings, date_from: str, date_to: str, configurations: tuple[str, ...]) -> None:
    """Refuse (exit 2) a span with no stored drawing, one crossing an era, or none with enough history."""
    from shiol_lib.domain.spans import targets_with_history

    frame = open_existing_store(settings).read_draws()
    needed = max(RESEARCH_HISTORY_NEEDED[name] for name in configurations)
    try:
        targets_with_history(
            (d.date() for d in frame["draw_date"]), date.fromisoformat(date_from), date.fromisoformat(date_to), needed
        )
    except (ValueError, InsufficientHistoryError) as err:
        raise ParameterError(f"--from {date_from} --to {date_to}: {err}; nothing was run", [str(err)]) from err


def _run(
    settings: Settings,
    job: JobDefinition,
    cluster: str | None,
    parameters: dict[str, Any],
    seed: int | None,
    check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    from shiol_lib.jobs import run as pipeline
    from shiol_lib.jobs.liveness import interrupt_on_sigterm

    engine = resolve_cluster(cluster, settings.dask_address)
    check_cluster(engine)
    if check is not None:
        check()
    interrupt_on_sigterm()
    step = job.steps[0].name  # a research job is one notebook: its figures are that step's metrics
    outcome = pipeline.run_job(settings, job.name, seed=seed, step_parameters={step: {**parameters, "cluster": engine}})
    metrics = outcome.manifest.metrics
    execution = metrics.get(f"{step}_execution", {})
    return {
        "run_id": outcome.run_id,
        "status": str(outcome.status),
        "directory": str(outcome.directory),
        "cluster": engine,
        "error": outcome.manifest.error,
        **metrics.get(step, {}),
        "tasks_by_worker": execution.get("tasks_by_worker", {}),
        "seconds": execution.get("seconds"),
    }


def _finish(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(f"run {data['run_id']}: {data['status']} on {data['cluster']}")
        for line in lines if data["status"] == RunStatus.SUCCESS else [f"  {data['error']}"]:
            click.echo(f"  {line}")
        click.echo(f"  tasks by worker: {data['tasks_by_worker']}")
        click.echo(f"  archive: {data['directory']}")
    if data["status"] != RunStatus.SUCCESS:
        sys.exit(ExitCode.RUN_FAILED)


@research_group.command("backtest")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First target drawing.")
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last target drawing.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds per drawing.")
@click.option(
    "--config",
    "configurations",
    multiple=True,
    default=("fast",),
    show_default=True,
    type=click.Choice(list(RESEARCH_HISTORY_NEEDED)),
    help="Configuration (repeat for several).",
)
@click.option("--seed", type=int, help="First seed (default: the pipeline's fixed seed).")
@click.option("--cluster", help=_CLUSTER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_obj
def backtest_command(
    settings: Settings,
    date_from: Any,
    date_to: Any,
    seeds: int,
    configurations: tuple[str, ...],
    seed: int | None,
    cluster: str | None,
    as_json: bool,
) -> None:
    """Walk-forward backtest of every stored drawing from --from to --to, per seed and configuration."""
    parameters = {
        "date_from": date_from.date().isoformat(),
        "date_to": date_to.date().isoformat(),
        "seeds": seeds,
        "configurations": list(configurations),
    }
    try:
        data = _run(
            settings,
            RESEARCH_BACKTEST_JOB,
            cluster,
            parameters,
            seed,
            lambda: _check_span(settings, parameters["date_from"], parameters["date_to"], configurations),
        )
    except ShiolError as err:
        fail(err)
    skipped = data.get("skipped") or {}
    _finish(
        data,
        as_json,
        [
            *(
                [f"skipped {skipped['drawings']} drawing(s) {skipped['from']} .. {skipped['to']}: {skipped['reason']}"]
                if skipped.get("drawings")
                else []
            ),
            f"{data.get('drawings')} drawings from {data.get('first_target')} to {data.get('last_target')}, "
            f"{data.get('tickets')} tickets: mean white matches "
            f"{data.get('mean_white_matches')} (CI {data.get('white_ci')}) vs {data.get('expected_white_matches')}, "
            f"no-edge p = {data.get('p_value')}",
        ],
    )


@research_group.command("power")
@click.option("--strengths", default="1.0,1.5,2.0,3.0", show_default=True, help="Bias strengths, comma-separated.")
@click.option("--drawings", default="20,40", show_default=True, help="Tested drawings per history, comma-separated.")
@click.option("--histories", type=click.IntRange(min=1), default=10, show_default=True, help="Histories per cell.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--seed", type=int, help="Seed of the synthetic histories (default: the pipeline's fixed seed).")
@click.option("--cluster", help=_CLUSTER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_obj
def power_command(
    settings: Settings,
    strengths: str,
    drawings: str,
    histories: int,
    alpha: float,
    seed: int | None,
    cluster: str | None,
    as_json: bool,
) -> None:
    """Detection rate of the "no edge" test per planted bias strength and number of tested drawings."""
    try:
        values = {
            "strengths": [float(s) for s in strengths.split(",")],
            "drawings": [int(d) for d in drawings.split(",")],
        }
    except ValueError as err:
        raise click.BadParameter(f"--strengths and --drawings take comma-separated numbers ({err})") from err
    try:
        data = _run(settings, RESEARCH_POWER_JOB, cluster, {**values, "histories": histories, "alpha": alpha}, seed)
    except ShiolError as err:
        fail(err)
    _finish(
        data,
        as_json,
        [
            f"strength {c['strength']:g}, {c['drawings']} drawings: detected {c['detected']}/{c['histories']} "
            f"({c['detection_rate']:.2f}, CI {c['ci_low']:.2f}-{c['ci_high']:.2f})"
            for c in data.get("cells", [])
        ],
    )
