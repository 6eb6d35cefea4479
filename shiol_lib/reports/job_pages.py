"""One page per job, ``runs/<job>/index.html``: its definition, next slots, pause state and recent record.

Written with the dashboard at each run close (and by ``shiol runs pages``), from what the caller knows of
the definitions (:class:`JobPage`: plain data, secrets by name only) and what the dashboard read: the
runs of its window, the open dead letters and the recorded missed slots. Each page is recorded in the
pages record like the dashboard (``shiol runs verify`` checks it).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from shiol_lib.archive.pages import PAGE
from shiol_lib.domain.runs import RunStatus
from shiol_lib.reports.run_views import RunView
from shiol_lib.store.jobs import DeadLetter
from shiol_lib.store.monitoring import MissedSlot

RECENT_RUNS = 50  # the runs a job page lists and measures (of the dashboard's window)


@dataclass(frozen=True)
class JobPage:
    """What a job page shows of the job's definition: plain data, secrets as names only (never values)."""

    name: str
    description: str
    schedule: str  # in words: "cron 0 7 * * 1 (America/New_York)", "manual"
    paused: bool
    builtin: bool
    next_slots: tuple[str, ...] = ()  # ISO-8601 with their New York offset
    definition: Mapping[str, Any] = field(default_factory=dict)
    retry_backoff_s: tuple[float, ...] | None = None  # the job's own retry delays (None: the settings')


def write_job_pages(
    runs_dir: Path,
    jobs: Sequence[JobPage],
    views: Sequence[RunView],
    *,
    seen: Collection[str] = (),
    dead_letters: Sequence[DeadLetter],
    missed: Sequence[MissedSlot],
    env: Environment,
    css: Markup,
    generated: str,
    put: Callable[[Path, bytes], None],
) -> None:
    """Write the page of each job with runs in the archive (``seen``, or in ``views``) with ``put``.

    A job's page sits in its folder, which its first run creates; a job whose definition is gone from
    ``jobs`` keeps a page of its runs. ``put`` writes a page atomically and records it (the dashboard's).
    """
    defined = {job.name: job for job in jobs}
    template = env.get_template("job.html")
    for name in sorted({v.manifest.job for v in views} | set(seen)):
        job = defined.get(name) or JobPage(name, "", "no longer defined (its runs stay in the archive)", False, False)
        runs = [v for v in views if v.manifest.job == name][:RECENT_RUNS]
        text = template.render(
            job=job,
            runs=runs,
            record=_record(runs),
            dead_letters=[d for d in dead_letters if d.job == name],
            missed=[m for m in missed if m.job == name],
            css=css,
            generated=generated,
        )
        put(runs_dir / name / PAGE, text.encode("utf-8"))


def _record(runs: Sequence[RunView]) -> dict[str, Any]:
    """Success rate and durations of the finished runs among ``runs``."""
    finished = [v.manifest for v in runs if RunStatus(v.manifest.status).is_finished]
    durations = [m.duration_s for m in finished if m.duration_s is not None]
    ok = sum(1 for m in finished if m.status == RunStatus.SUCCESS)
    return {
        "finished": len(finished),
        "success": ok,
        "rate": f"{100.0 * ok / len(finished):.0f} %" if finished else "",
        "median_s": f"{statistics.median(durations):.1f} s" if durations else "",
        "max_s": f"{max(durations):.1f} s" if durations else "",
    }
