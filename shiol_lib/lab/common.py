"""What the Lab's handlers share: the JSON error shape, the settings, reads off the event loop, detached commands.

Every handler is a :class:`jupyter_server.base.handlers.APIHandler` (Jupyter's token and XSRF checks)
whose methods are ``@tornado.web.authenticated``. Bad input raises :class:`BadRequest` (400),
:class:`NotFound` (404) or :class:`Conflict` (409); each becomes ``{"error": ..., "field": ...}``
with its status, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler

from shiol_lib.settings import Settings, child_environment, load_settings

PREFIX = "shiol/api/v1"
T = TypeVar("T")
log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success: its HTTP status, message (naming the value and what to do) and field."""

    status = 400

    def __init__(self, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.field = field
        self.extra = extra


class BadRequest(ApiError):
    """A malformed parameter or body (400)."""


class NotFound(ApiError):
    """An unknown run, job, file or notebook (404)."""

    status = 404


class Conflict(ApiError):
    """An action the job's state refuses: paused, or a run in flight (409)."""

    status = 409


class ShiolHandler(APIHandler):
    """The base of every workbench handler: settings, the Lab root, JSON in and out, errors as JSON."""

    @property
    def settings_(self) -> Settings:
        """The workbench settings the extension loaded at start (``SHIOL_*`` of the server's environment)."""
        return self.settings["shiol_settings"]

    @property
    def root(self) -> Path:
        """The Lab server's root folder (relative notebook paths are under it)."""
        return Path(self.settings["shiol_root"])

    def answer(self, data: Any, status: int = 200) -> None:
        """Send ``data`` as JSON with ``status``."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def fail(self, err: ApiError) -> None:
        """Send an error answer."""
        self.answer({"error": str(err), "field": err.field, **err.extra}, err.status)

    def body(self) -> dict[str, Any]:
        """The request's JSON object body ({} when empty); anything else is a 400."""
        raw = self.request.body or b"{}"
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest(f"the request body is not JSON ({err}); send a JSON object", "body") from err
        if not isinstance(data, dict):
            raise BadRequest(f"the request body is a {type(data).__name__}; send a JSON object", "body")
        return data

    def int_argument(self, name: str, default: int, low: int, high: int | None = None) -> int:
        """A whole-number query argument within [low, high]; anything else is a 400 naming it."""
        text = self.get_query_argument(name, None)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise BadRequest(f"{name}={text!r} is not a whole number {bounds}; give one in that range", name)
        return value

    async def off_loop(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` in a worker thread (store and archive reads never block the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(None, partial(function, *args, **kwargs))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors Jupyter raises (403 without a token, 405, ...) keep the JSON error shape."""
        reason = self._reason or "error"
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or reason
        self.answer({"error": message, "field": None}, status_code)


def answers(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Turn the :class:`ApiError` a handler method raises into its JSON answer."""

    @functools.wraps(method)
    async def wrapper(self: ShiolHandler, *args: Any) -> None:
        try:
            await method(self, *args)
        except ApiError as err:
            self.fail(err)

    return wrapper


def start_detached(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """Start ``shiol ARGS`` (this interpreter) in a session of its own; a thread reaps it when it ends.

    The command runs with exactly the server's workbench settings; its output goes to ``<home>/logs``.
    """
    logs = Path(settings.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "lab-actions.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shiol_lib.cli", *args],
            env=child_environment(settings),
            cwd=settings.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("started shiol %s (pid %d)", " ".join(args), proc.pid)
    threading.Thread(target=proc.wait, name=f"shiol-{args[0]}-{proc.pid}", daemon=True).start()
    return proc


def workbench_settings() -> Settings:
    """The settings from the server's environment (read once, when the extension loads)."""
    return load_settings()
