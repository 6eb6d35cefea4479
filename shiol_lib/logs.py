"""Logging for the entry points: one line per event, to stderr and optionally a rotating file, text or JSON.

Only entry points call :func:`configure_logging` (the ``shiol`` command, the scheduler app, the job
process); library modules just log. Events that concern a run carry their facts as ``extra`` fields
(:data:`EVENT_FIELDS`: job, run id, slot, attempt, status, error class and the error's first line):
the text format has them in the message already, the JSON format adds them as keys for log shippers.

Rocketry logs every task's ``run`` and ``success`` to its task logger; our tasks never raise (a failed
job is a result, not an exception), so those lines would say ``success`` right after the scheduler's
``finished: failed``. They stay in Rocketry's own log store (its conditions read it) but reach our
handlers only when they report a task that raised, crashed or was terminated.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from typing import IO

from shiol_lib.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EVENT_FIELDS = ("job", "run_id", "slot", "attempt", "trigger", "status", "error_class", "error")
ROCKETRY_TASK_LOGGER = "rocketry.task"
ROCKETRY_KEPT_ACTIONS = frozenset({"fail", "crash", "terminate"})
_MARK = "_shiol_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO-8601), level, logger, message and the event fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value if isinstance(value, (int, float, bool)) else str(value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _RocketryFilter(logging.Filter):
    """Pass only Rocketry task records that report trouble (a task that raised, crashed, timed out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "action", None) in ROCKETRY_KEPT_ACTIONS


def first_line(text: str | None, limit: int = 200) -> str | None:
    """The first non-empty line of an error message, cut to ``limit`` characters (None stays None)."""
    if not text:
        return None
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:limit] if lines else None


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``SHIOL_LOG_FORMAT`` (``text`` or ``json``)."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    settings: Settings | None, *, level: int = logging.INFO, stream: IO[str] | None = None, to_file: bool = True
) -> None:
    """Send the root logger's records to ``stream`` (stderr) and, with ``SHIOL_LOG_FILE``, a rotating file.

    Calling it again replaces the handlers it installed before, and a plain stderr handler that
    ``logging.basicConfig`` left on the root logger (either would write every line twice); any other
    handler is left alone. A job process passes ``to_file=False``: its stderr goes to the scheduler,
    which writes the file.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False) or _is_default_stderr(h)]:
        root.removeHandler(handler)
        handler.close()
    formatter = make_formatter(settings.log_format if settings else "text")
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if settings is not None and settings.log_file is not None and to_file:
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file,
                maxBytes=settings.log_max_bytes,
                backupCount=settings.log_backups,
                encoding="utf-8",
                delay=True,
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level)
    _quiet_rocketry(handlers)


def _is_default_stderr(handler: logging.Handler) -> bool:
    """A plain ``StreamHandler`` on stderr, as ``logging.basicConfig`` installs (not a subclass: not a test's)."""
    return type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.__stderr__)


def _quiet_rocketry(handlers: list[logging.Handler]) -> None:
    """Keep Rocketry's routine task records out of our handlers; pass the ones that report trouble."""
    task_logger = logging.getLogger(ROCKETRY_TASK_LOGGER)
    task_logger.propagate = False  # Rocketry's own repo handler on this logger keeps every record
    for handler in [h for h in task_logger.handlers if getattr(h, _MARK, False)]:
        task_logger.removeHandler(handler)
    for handler in handlers:
        forward = _Forward(handler)
        setattr(forward, _MARK, True)
        forward.addFilter(_RocketryFilter())
        task_logger.addHandler(forward)


class _Forward(logging.Handler):
    """Hands a record to one of our handlers (so the filter applies to ours only, not Rocketry's repo)."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)
