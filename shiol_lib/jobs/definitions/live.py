"""The definitions a long-running process keeps in force: reloaded when the jobs file changes, kept when it breaks.

The scheduler asks :meth:`JobDefinitions.reload` at each planning cycle. A file that validates
replaces the definitions at once (a removed job is no longer planned; its archive stays); one that
does not leaves the last good definitions in force and its problems on :attr:`JobDefinitions.problems`
(the scheduler turns them into an incident) until an edit fixes it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from datetime import UTC, datetime

from shiol_lib.domain.draw_calendar import iso_et
from shiol_lib.domain.slots import next_slot
from shiol_lib.errors import JobsFileError, JobsFileProblem
from shiol_lib.jobs.definitions.reading import builtin_jobs, effective_jobs
from shiol_lib.jobs.definitions.spec import JobSpec
from shiol_lib.reports.job_pages import JobPage
from shiol_lib.settings import Settings

log = logging.getLogger(__name__)


class JobDefinitions:
    """The job definitions in force in this process, and the jobs file's problems when it does not validate.

    ``text`` is the jobs file's text behind :attr:`in_force` (None: no file, or none that ever
    validated here): a job process is handed it, so it runs the definition the scheduler planned.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.in_force: dict[str, JobSpec] = builtin_jobs(settings)
        self.text: str | None = None
        self.problems: list[JobsFileProblem] = []
        self._signature: tuple[int, int] | None | bool = False  # False: never read
        self.reload()

    def reload(self) -> bool:
        """Read the jobs file again if it changed; True when new definitions came into force."""
        path = self.settings.jobs_path
        try:
            info = os.stat(path)
            signature: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except OSError:
            signature = None
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            text = path.read_text(encoding="utf-8") if signature is not None else None
            jobs = effective_jobs(self.settings, file=path, text=text if text is not None else "")
        except (OSError, UnicodeDecodeError) as err:
            self._refuse([JobsFileProblem(str(path), None, None, f"cannot read: {err}")])
            return False
        except JobsFileError as err:
            self._refuse(err.problems)
            return False
        if self.problems:
            log.info("jobs file %s validates again: its definitions are in force", path)
        self.in_force, self.text, self.problems = jobs, text, []
        return True

    def _refuse(self, problems: list[JobsFileProblem]) -> None:
        self.problems = list(problems)
        for problem in problems:
            log.error("jobs file refused, the last good definitions stay in force: %s", problem)

    @staticmethod
    def problem_dict(problem: JobsFileProblem) -> dict[str, str | None]:
        """One problem as JSON-ready data: file, job, field, reason."""
        return asdict(problem)


def job_pages(settings: Settings, now: datetime | None = None, *, slots: int = 5) -> list[JobPage]:
    """What the dashboard's job pages show of each job in force: definition (secrets by name), next slots.

    Read without inspecting the notebooks (a run close stays quick); a jobs file that does not validate
    shows the built-in jobs only (its problems are the scheduler's incident).
    """
    try:
        jobs = effective_jobs(settings, inspect=False)
    except JobsFileError:
        jobs = builtin_jobs(settings)
    at = now or datetime.now(UTC)
    pages = []
    for spec in jobs.values():
        upcoming: list[str] = []
        if spec.planned:
            cron, instant = spec.schedule.cron_spec(), at
            for _ in range(slots):
                instant = next_slot(cron, instant)
                upcoming.append(iso_et(instant))
        definition = {k: v for k, v in spec.as_dict().items() if k not in ("name", "description", "builtin", "source")}
        pages.append(
            JobPage(
                spec.name,
                spec.description,
                spec.schedule.describe(),
                spec.paused,
                spec.builtin,
                tuple(upcoming),
                definition,
                spec.retry_backoff_s,
            )
        )
    return pages
