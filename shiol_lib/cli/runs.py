"""``shiol run``, ``shiol runs ...`` and ``shiol rerun``: run jobs and steps, browse and check the archive.

Exit codes add to those of :mod:`shiol_lib.cli`: 6 a run failed or timed out; 7 the archive could not
be written or read; 8 a check found a difference (rerun outputs differ, the ledger is broken).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shiol_lib.domain.runs import ExitCode, RunStatus, Trigger
from shiol_lib.errors import (
    RunnerError,
    ShiolError,
)
from shiol_lib.settings import Settings

if TYPE_CHECKING:
    pass

from shiol_lib.cli import archive as cli_archive
from shiol_lib.cli.common import (
    RUN_ID,
    TRIGGERS,
    fail,
    open_existing_store,
    parameter_option,
    require_store,
)


def _print_outcome(outcome: Any, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": outcome.run_id,
                    "status": outcome.status,
                    "directory": str(outcome.directory),
                    "manifest": outcome.manifest.to_dict(),
                },
                indent=2,
            )
        )
    else:
        m = outcome.manifest
        click.echo(f"run {outcome.run_id} ({outcome.job}): {outcome.status} in {m.duration_s or 0:.1f} s")
        if m.target_draw_date:
            click.echo(f"  target drawing: {m.target_draw_date} (history up to {m.history_end})")
        for step in m.steps:
            line = f"  {step.name:<24} {step.status:<8}"
            if step.duration_s is not None:
                line += f" {step.duration_s:6.1f} s"
            if step.error:
                line += f"  {step.error}"
            click.echo(line)
        if m.error and not any(step.error for step in m.steps):  # refused before a step ran: a secret, the packages
            click.echo(f"  error: {m.error}")
            click.echo(f"error: run {outcome.run_id} ({outcome.job}) {outcome.status}: {m.error}", err=True)
        click.echo(f"  archive: {outcome.directory}")
    if outcome.status != RunStatus.SUCCESS:
        sys.exit(ExitCode.RUN_FAILED)


@click.command("run")
@click.argument("job")
@click.argument("step_name", required=False)
@parameter_option("A notebook parameter (values parsed as YAML: 100 is an int, 0.5 a float).")
@click.option("--offline", is_flag=True, help="Step 1 asks no network source (bundled data only).")
@click.option("--seed", type=int, help="Random seed (default: the pipeline's fixed seed, recorded in the manifest).")
@click.option("--target", "target", type=click.DateTime(["%Y-%m-%d"]), help="Target drawing (default: the next one).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option(
    "--trigger",
    type=click.Choice(TRIGGERS),
    default=Trigger.MANUAL.value,
    show_default=True,
    help="Why the run starts (the scheduler passes its reason).",
)
@click.option("--slot", help="The schedule slot (ISO-8601 with offset) this run belongs to.")
@click.option(
    "--draw-date",
    "draw_date",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Pipeline: the drawing this run processes (history up to it; predicts the next one).",
)
@click.option("--attempt", type=click.IntRange(min=1), default=1, show_default=True)
@click.pass_obj
def run_command(
    settings: Settings,
    job: str,
    step_name: str | None,
    parameters: tuple[tuple[str, str], ...],
    offline: bool,
    seed: int | None,
    target: Any,
    as_json: bool,
    trigger: str,
    slot: str | None,
    draw_date: Any,
    attempt: int,
) -> None:
    """Run JOB now (any job in force: built-in or from jobs.toml), or one step: `shiol run step NAME -p key value`.

    `-p NAME VALUE` goes to every step of the job that declares NAME, over the job's definition.
    """
    from shiol_lib.jobs.context import DEFAULT_SEED, RunContext, parse_trigger
    from shiol_lib.jobs.liveness import interrupt_on_sigterm, refuse_if_busy
    from shiol_lib.jobs.progress import StreamProgress

    interrupt_on_sigterm()
    progress = StreamProgress()  # stderr: step lines (and, on a terminal, papermill's per-cell bar)
    existed = settings.db_path.exists()  # the run creates the store (after its own checks): say so then
    try:
        target_date = target.date() if target else None
        try:
            slot_at = datetime.fromisoformat(slot) if slot else None
        except ValueError as err:
            raise RunnerError(f"--slot {slot!r} is not an ISO-8601 instant (e.g. 2024-07-01T23:29:00-04:00)") from err
        if slot_at is not None and slot_at.tzinfo is None:
            raise RunnerError(f"--slot {slot!r} needs its UTC offset (e.g. 2024-07-01T23:29:00-04:00)")
        context = RunContext(
            trigger=parse_trigger(trigger),
            slot=slot_at,
            attempt=attempt,
            draw_date=draw_date.date() if draw_date else None,
        )
        # A busy job is refused before the runner (papermill, nbformat: seconds) is imported, let alone a kernel.
        refuse_if_busy(settings, job, context, seed=DEFAULT_SEED if seed is None else seed)
        from shiol_lib.jobs import run as pipeline

        if job == "step":
            if not step_name:
                raise RunnerError("name the step: shiol run step NAME (e.g. generate_predictions)")
            step = pipeline.find_step(step_name)
            values = parse_parameters(settings.notebooks_dir / step.notebook, parameters)
            outcome = pipeline.run_job(
                settings,
                "step",
                steps=(step,),
                step_parameters={step.name: values},
                seed=seed,
                offline=offline,
                target_draw_date=target_date,
                progress=progress,
                context=context,
            )
        else:
            if step_name:
                raise RunnerError(f"'shiol run {job}' takes no step name; run one step with: shiol run step NAME")
            outcome = pipeline.run_job(
                settings,
                job,
                parameters=parse_job_parameters(settings, job, parameters),
                seed=seed,
                offline=offline,
                target_draw_date=target_date,
                progress=progress,
                context=context,
            )
    except ShiolError as err:
        _say_created(settings, existed)
        fail(err)
    _say_created(settings, existed)
    _print_outcome(outcome, as_json)


def parse_job_parameters(settings: Settings, job: str, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs of a job run, each read as the first of its notebooks declaring NAME does."""
    from shiol_lib.execution.parameters import read_parameters
    from shiol_lib.jobs.definitions import load_job
    from shiol_lib.jobs.definitions.spec import HANDED
    from shiol_lib.jobs.handed import notebook_path

    if not pairs:
        return {}
    notebooks = [notebook_path(settings.notebooks_dir, step) for step in load_job(settings, job).steps]
    values: dict[str, Any] = {}
    for name, text in pairs:
        if name in HANDED:
            raise RunnerError(f"-p {name}: every run is handed {', '.join(HANDED)}; they cannot be set")
        notebook = next((nb for nb in notebooks if name in read_parameters(nb)), None)
        if notebook is None:
            raise RunnerError(f"-p {name}: no notebook of job {job} declares it (see: shiol jobs show {job})")
        values.update(parse_parameters(notebook, ((name, text),)))
    return values


def parse_parameters(notebook: Path, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs as notebook values.

    A parameter declared ``str`` takes the text as given (``2024-07-01`` stays a string); any other is
    read as YAML (``100`` an int, ``0.5`` a float); unreadable YAML is a usage error naming the parameter.
    """
    import yaml  # here: `shiol --help` and `status` never parse YAML

    from shiol_lib.execution.parameters import read_parameters

    declared = read_parameters(notebook)
    values: dict[str, Any] = {}
    for name, text in pairs:
        if name in declared and declared[name].type_name.replace(" ", "") in ("str", "str|None", "Optional[str]"):
            values[name] = text
            continue
        try:
            values[name] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RunnerError(f"-p {name} {text!r}: the value is not valid YAML ({first}); quote it or fix it") from err
    return values


def _say_created(settings: Settings, existed: bool) -> None:
    if not existed and settings.db_path.exists():
        click.echo(f"created the store at {settings.db_path} (SHIOL_HOME {settings.home})", err=True)


@click.command("rerun")
@click.argument("run_id", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def rerun_command(settings: Settings, run_id: str, as_json: bool) -> None:
    """Re-execute a run with its recorded parameters and seed; report whether the outputs match."""
    from shiol_lib.jobs import run as pipeline
    from shiol_lib.jobs.progress import StreamProgress

    try:
        require_store(settings)
        result = pipeline.rerun(settings, run_id, progress=StreamProgress())
    except ShiolError as err:
        fail(err)
    comparison = result.comparison
    if as_json:
        click.echo(result.to_json())
    else:
        click.echo(f"rerun {result.run_id} of {run_id}: {result.status} (a new run, archived in {result.directory})")
        for key, pair in comparison.outputs.items():
            same = "same" if pair.same else "DIFFERENT"
            same = same if pair.compared else f"{same} (not compared: depends on the sources)"
            click.echo(f"  {key:<36} {same}")
        click.echo(f"  input draws {'same' if comparison.input_identical else 'DIFFERENT'}")
        click.echo("outputs identical" if comparison.identical else "outputs differ")
    if result.status != RunStatus.SUCCESS:
        sys.exit(ExitCode.RUN_FAILED)
    if not comparison.identical:
        sys.exit(ExitCode.MISMATCH)


@click.group("runs")
def runs_group() -> None:
    """Browse, compare, verify and prune the run history."""


@runs_group.command("list")
@click.option("--job", help="Only this job.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_command(settings: Settings, job: str | None, limit: int, as_json: bool) -> None:
    """Every run and attempt recorded in the store, newest first."""
    from shiol_lib.store import runs as run_table

    try:
        rows = run_table.list_runs(open_existing_store(settings), job=job, limit=limit)
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(json.dumps([_row_dict(r) for r in rows], indent=2, default=str))
        return
    if not rows:
        click.echo("no runs recorded yet")
    for r in rows:
        took = f"{(r.finished_at - r.started_at).total_seconds():7.1f} s" if r.finished_at else "        -"
        click.echo(
            f"{r.run_id}  {r.job:<12} {r.trigger:<10} {r.status:<9} {took}  "
            f"target {r.target_draw_date or '-'}  {r.error or ''}".rstrip()
        )


def _row_dict(row: Any) -> dict[str, Any]:
    data = dict(row.__dict__)
    started, finished = row.started_at, row.finished_at
    data["duration_s"] = (finished - started).total_seconds() if finished else None
    return data


@runs_group.command("show")
@click.argument("run_id", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_command(settings: Settings, run_id: str, as_json: bool) -> None:
    """A run's manifest: steps, parameters, timings, hashes, versions."""
    from shiol_lib.archive import folders as archive
    from shiol_lib.lab.records import manifest_dict

    try:
        require_store(settings)
        directory = archive.find_run_dir(settings.runs_dir, run_id)
        manifest = archive.read_manifest(directory)
    except ShiolError as err:
        fail(err)
    m = manifest_dict(settings, manifest)  # each step's rerun command made anew (also on manifest.steps)
    if as_json:
        click.echo(json.dumps(m, indent=2, sort_keys=True))
        return
    click.echo(f"run {m['run_id']}  job {m['job']}  trigger {m['trigger']}  status {m['status']}")
    click.echo(f"  started {m['started_at']}  finished {m['finished_at']}  ({m['duration_s']} s)")
    click.echo(f"  seed {m['seed']}  target {m['target_draw_date']}  history to {m['history_end']}")
    click.echo(
        f"  resources: peak {_megabytes(manifest.peak_rss_mb)}, cpu {_seconds(manifest.cpu_s)}"
        + (f"  error class {manifest.error_class}" if manifest.error_class else "")
    )
    code = manifest.code
    click.echo(
        f"  code {code.get('git_commit')}{' (dirty)' if code.get('git_dirty') else ''}  "
        f"input draws {str(manifest.input.get('draws_sha256', '-'))[:16]}"
    )
    for step in manifest.steps:
        click.echo(
            f"  {step.name:<24} {step.status:<8} {step.duration_s or '':>8}  "
            f"peak {_megabytes(step.peak_rss_mb):>8}  cpu {_seconds(step.cpu_s):>8}  {step.html or ''}"
        )
        if step.error:
            click.echo(f"      error: {step.error}")
        if step.command:
            click.echo(f"      rerun: {step.command}")
    for key, value in sorted(manifest.outputs.items()):
        click.echo(f"  output {key}: {str(value)[:16]}")
    click.echo(f"  folder {directory}")


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@runs_group.command("diff")
@click.argument("first", type=RUN_ID)
@click.argument("second", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def diff_command(settings: Settings, first: str, second: str, as_json: bool) -> None:
    """Compare two runs: parameters, input data hash, code version, packages, outputs and key metrics."""
    from shiol_lib.archive import folders as archive
    from shiol_lib.archive.compare import diff_manifests
    from shiol_lib.store import runs as run_table

    try:
        store = open_existing_store(settings)
        a = archive.read_manifest(archive.find_run_dir(settings.runs_dir, first))
        b = archive.read_manifest(archive.find_run_dir(settings.runs_dir, second))
        differences = diff_manifests(a, b, packages=lambda sha: run_table.environment_packages(store, sha))
    except ShiolError as err:
        fail(err)
    if as_json:
        click.echo(
            json.dumps(
                {"first": first, "second": second, "differences": [d.to_dict() for d in differences]},
                indent=2,
                default=str,
            )
        )
        return
    if not differences:
        click.echo(f"{first} and {second}: no differences in parameters, data, code, packages, outputs or metrics")
    for item in differences:
        click.echo(f"{item.field}: {item.first!r} -> {item.second!r}")


for _command in (
    cli_archive.verify_command,
    cli_archive.witness_command,
    cli_archive.pages_command,
    cli_archive.prune_command,
    cli_archive.missed_command,
):
    runs_group.add_command(_command)
