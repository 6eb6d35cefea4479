"""The health API's HTTP plumbing: the uvicorn server, its socket, and admission to it.

:func:`make_server` builds the uvicorn server the scheduler awaits in its own loop (no signal handlers
of its own), :func:`bind_socket` binds its address up front, and :class:`CapExpensive` caps the
requests that read the store, never liveness.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shiol_lib.errors import ConfigError
from shiol_lib.settings import Settings

BACKLOG = 128
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long
MAX_HEADER_BYTES = 16 * 1024  # h11's own default, stated: a larger request head is refused

LIVENESS_PATH = "/healthz"


class CapExpensive:
    """Answer 503 to requests beyond ``limit`` at once, except ``/healthz`` (liveness is never capped).

    uvicorn's own ``limit_concurrency`` counts every connection, so a scrape burst made liveness
    answer 503 and a probe restart a healthy scheduler; this cap counts only what reads the store.
    """

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass ``/healthz`` and non-HTTP scopes straight through; count and cap the rest."""
        if scope["type"] != "http" or scope.get("path") == LIVENESS_PATH:
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await JSONResponse({"error": f"busy: {self.limit} requests in progress; try again"}, status_code=503)(
                scope, receive, send
            )
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def make_server(app: Starlette, settings: Settings) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``api_host:api_port``; the caller runs ``await server.serve()``.

    Lifespan off, uvicorn's loggers at WARNING and left to the host's logging configuration, and
    signals left to the host: set ``server.should_exit = True`` to stop it.
    """
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=5,
        http="h11",
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    return _EmbeddedServer(config)


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` for ``server.serve(sockets=[sock])``.

    Binding up front turns a taken port into a clear configuration error before the scheduler
    starts anything.

    Raises:
        ConfigError: the address cannot be bound (taken, not local, not permitted); names
            ``host:port`` and the variables that set them.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"the health API cannot listen on {host}:{port}: {err.strerror or err}; "
            "set SHIOL_API_PORT to a free port (or SHIOL_API_HOST to a local address)"
        ) from err
    return sock


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: SIGINT/SIGTERM stay with the scheduler.

    Since uvicorn 0.29, ``serve()`` wraps itself in ``capture_signals()``, which (in the main thread)
    replaces the SIGINT/SIGTERM handlers and re-raises a caught signal after shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        """The uvicorn loop with one tick a second, not ten (0.15 % of a core idle, most of the scheduler's).

        A tick only refreshes the ``date`` header (every tenth tick in uvicorn: here every tick) and looks
        at ``should_exit``, so a stop takes effect within a second.
        """
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            await asyncio.sleep(1.0)
            should_exit = await self.on_tick(counter)
