"""Admission to the health API: a cap on the requests that read the store, none on liveness."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

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
            await JSONResponse({"error": f"busy: {self.limit} requests in progress; try again"},
                               status_code=503)(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
