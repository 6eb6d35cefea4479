"""A job run in a fresh child process, handed its settings and request explicitly.

The scheduler starts each job as ``python -m shiol_lib.jobs.job_process`` in a session of its own
(so a timeout or a stop can kill it with its papermill child and kernel) and writes one JSON document
to its stdin: ``{"settings": <SHIOL_* variables>, "request": <RunRequest>, "result_path": <file>}``.
The child rebuilds exactly the scheduler's :class:`Settings` from that (never from its own
environment), runs the job, and writes a :class:`RunResult` to ``result_path``. Secrets travel on
stdin and in the kernel's environment, never on a command line or as notebook parameters.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shiol_lib.domain.runs import ExitCode
from shiol_lib.errors import ConfigError, JobBusyError, RunnerError, ShiolError, StoreError
from shiol_lib.jobs.context import RunContext
from shiol_lib.settings import Settings, load_settings, settings_to_env

log = logging.getLogger(__name__)

# Exit codes of the job process (the same meanings as the CLI's, README "Exit codes").
EXIT_OK, EXIT_ERROR, EXIT_USAGE = ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE
EXIT_STORE, EXIT_RUN_FAILED, EXIT_BUSY = ExitCode.STORE, ExitCode.RUN_FAILED, ExitCode.BUSY


@dataclass(frozen=True)
class RunRequest:
    """What the scheduler asks one job process to run: the job, why (its :class:`RunContext`) and how."""

    job: str
    context: RunContext = field(default_factory=RunContext)
    offline: bool = False
    seed: int | None = None
    jobs_text: str | None = None  # the jobs file the scheduler's definitions come from (None: read the file)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the context's fields beside the job's; instants and dates as ISO-8601)."""
        return {
            "job": self.job,
            **self.context.to_dict(),
            "offline": self.offline,
            "seed": self.seed,
            "jobs_text": self.jobs_text,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` on a malformed request."""
        try:
            return cls(
                job=str(data["job"]),
                context=RunContext.from_dict(data),
                offline=bool(data.get("offline", False)),
                seed=int(data["seed"]) if data.get("seed") is not None else None,
                jobs_text=str(data["jobs_text"]) if data.get("jobs_text") is not None else None,
            )
        except (KeyError, TypeError, ValueError, ConfigError) as err:
            raise ConfigError(f"malformed run request {data!r}: {err}") from err


@dataclass(frozen=True)
class RunResult:
    """What a job process reports back: the run it recorded (if any), its status, and why."""

    run_id: str | None
    status: str
    error: str | None = None
    error_class: str | None = None

    @classmethod
    def read(cls, path: Path) -> RunResult | None:
        """The result a job process wrote, or None when it died before writing one."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                run_id=data.get("run_id"),
                status=str(data["status"]),
                error=data.get("error"),
                error_class=data.get("error_class"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def start_job_process(settings: Settings, request: RunRequest, result_path: Path) -> tuple[subprocess.Popen, str]:
    """Start the job process in its own session; returns it and the document to write to its stdin."""
    document = json.dumps(
        {"settings": settings_to_env(settings), "request": request.to_dict(), "result_path": str(result_path)}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiol_lib.jobs.job_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, document


def run_request(settings: Settings, request: RunRequest) -> tuple[RunResult, int]:
    """Run one job as asked, in this process; returns the result and the exit code it stands for."""
    from shiol_lib.jobs.definitions import load_job
    from shiol_lib.jobs.run import run_job  # the pipeline machinery (papermill) only where a job runs

    try:
        definition = load_job(settings, request.job, text=request.jobs_text)
        outcome = run_job(
            settings,
            request.job,
            context=request.context,
            seed=request.seed,
            offline=request.offline,
            definition=definition,
        )
    except JobBusyError as err:
        return RunResult(None, "refused", str(err), "busy"), EXIT_BUSY
    except (ConfigError, RunnerError) as err:
        return RunResult(None, "failed", str(err), "configuration"), EXIT_USAGE
    except StoreError as err:
        return RunResult(None, "failed", str(err), "store"), EXIT_STORE
    except ShiolError as err:
        return RunResult(None, "failed", str(err), type(err).__name__), EXIT_ERROR
    code = EXIT_OK if outcome.status == "success" else EXIT_RUN_FAILED
    manifest = outcome.manifest
    return RunResult(outcome.run_id, str(outcome.status), manifest.error, manifest.error_class), code


def main() -> int:
    """Entry point of the job process: read the document on stdin, run, write the result."""
    from shiol_lib.archive.folders import write_atomic
    from shiol_lib.jobs.liveness import interrupt_on_sigterm
    from shiol_lib.logs import configure_logging

    try:
        document = json.loads(sys.stdin.read())
        settings = load_settings(document["settings"])
        request = RunRequest.from_dict(document["request"])
        result_path = Path(document["result_path"])
    except (ValueError, KeyError, TypeError, ShiolError) as err:
        print(f"error: the job process got no usable request on stdin: {err}", file=sys.stderr)
        return EXIT_USAGE
    # stderr only: it goes to the scheduler, which owns the log file (one writer rotates it)
    configure_logging(settings, level=logging.INFO, to_file=False)
    interrupt_on_sigterm()
    result, code = run_request(settings, request)
    if result.error and code != EXIT_OK:
        print(f"error: {result.error}", file=sys.stderr)
    write_atomic(result_path, json.dumps(asdict(result)).encode("utf-8"))
    return code


if __name__ == "__main__":
    sys.exit(main())
