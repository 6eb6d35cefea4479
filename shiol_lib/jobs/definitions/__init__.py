"""Job definitions: the built-in jobs and the analyst's ``jobs.toml``, in one format (README "Analyst jobs").

:mod:`.spec` holds the types (:class:`JobSpec`, :class:`Schedule`) and the field rules, :mod:`.reading`
parses and validates the files and settles which definitions are in force, :mod:`.edits` changes the
analyst's file keeping its comments (imported on its own: it needs tomlkit).
"""

from shiol_lib.jobs.definitions.reading import BUILTIN_FILE, builtin_jobs, effective_jobs, load_job, parse_jobs
from shiol_lib.jobs.definitions.spec import (
    DEFAULT_TIMEZONE,
    CatchUp,
    EnvironmentPolicy,
    JobSpec,
    Schedule,
    StoreAccess,
    cron_problem,
    parse_duration,
)

__all__ = [
    "BUILTIN_FILE",
    "DEFAULT_TIMEZONE",
    "CatchUp",
    "EnvironmentPolicy",
    "JobSpec",
    "Schedule",
    "StoreAccess",
    "builtin_jobs",
    "cron_problem",
    "effective_jobs",
    "load_job",
    "parse_duration",
    "parse_jobs",
]
