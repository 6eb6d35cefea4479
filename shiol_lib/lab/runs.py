"""The Lab's run handlers: the list (filters, paging), one run, its report and files, a diff, a rerun.

Reads go to the reader snapshot and the archive in a worker thread (:meth:`ShiolHandler.off_loop`); a
rerun starts ``shiol rerun RUN_ID`` detached, exactly what a person would type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tornado.web

from shiol_lib.archive.folders import RUN_ID_PATTERN
from shiol_lib.domain.runs import RunStatus
from shiol_lib.lab import records
from shiol_lib.lab.common import BadRequest, NotFound, ShiolHandler, answers, start_detached
from shiol_lib.settings import Settings

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
# Archived pages are shown as they were written, in a sandbox: no script, no form, no same-origin access.
SANDBOX = "sandbox; frame-ancestors 'self'"
_TYPES = {
    ".ipynb": "application/x-ipynb+json",
    ".html": "text/html; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
}


def check_run_id(run_id: str, field: str = "run_id") -> str:
    """Refuse (400) anything that is not a run id: separators, dots, other shapes (no traversal)."""
    if not RUN_ID_PATTERN.match(run_id):
        raise BadRequest(
            f"{run_id!r} is not a run id (expected like 20261128T151500Z-a1b2c3); the runs list gives them", field
        )
    return run_id


class RunsHandler(ShiolHandler):
    """``GET runs?job=J&status=S&limit=N&offset=K``: a page of runs, newest first."""

    @tornado.web.authenticated
    @answers
    async def get(self) -> None:
        """The page of runs."""
        limit = self.int_argument("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0)
        status = self.get_query_argument("status", None) or None
        if status is not None and status not in set(RunStatus):
            known = ", ".join(sorted(RunStatus))
            raise BadRequest(f"status={status!r} is not a run status; use one of {known}", "status")
        job = self.get_query_argument("job", None) or None
        page = await self.off_loop(_page, self.settings_, job, status, limit, offset)
        self.answer(page)


def _page(settings: Settings, job: str | None, status: str | None, limit: int, offset: int) -> dict[str, Any]:
    with records.reader(settings) as conn:
        return records.run_records(settings, conn, job=job, status=status, limit=limit, offset=offset)


class RunHandler(ShiolHandler):
    """``GET runs/<run_id>``: one run with its steps, manifest and rerun command."""

    @tornado.web.authenticated
    @answers
    async def get(self, run_id: str) -> None:
        """The run."""
        check_run_id(run_id)
        self.answer(await self.off_loop(_detail, self.settings_, run_id))


def _detail(settings: Settings, run_id: str) -> dict[str, Any]:
    with records.reader(settings) as conn:
        try:
            return records.run_detail(settings, conn, run_id)
        except LookupError as err:
            raise NotFound(str(err), "run_id") from err


def _archived(settings: Settings, run_id: str) -> tuple[Path, Any]:
    try:
        return records.archived_run(settings, run_id)
    except LookupError as err:
        raise NotFound(str(err), "run_id") from err


class ReportHandler(ShiolHandler):
    """``GET runs/<run_id>/report``: the run's archived page (its run page, or its one step report)."""

    @tornado.web.authenticated
    @answers
    async def get(self, run_id: str) -> None:
        """The report, sandboxed."""
        check_run_id(run_id)
        found = await self.off_loop(_archived, self.settings_, run_id)
        page = records.report_file(found)
        if page is None:
            raise NotFound(f"run {run_id} has no report (no run page, and not exactly one step report)", "run_id")
        if page.name in records.archived_names(found):  # served beside the run's files: its links to them work
            self.redirect(f"{self.request.path.removesuffix('/report')}/files/{page.name}")
            return
        await self._send(page)

    async def _send(self, path: Path) -> None:
        data = await self.off_loop(path.read_bytes)
        if path.suffix == ".html":
            self.set_header("Content-Security-Policy", SANDBOX)
        self.finish(data, set_content_type=_TYPES.get(path.suffix, "application/octet-stream"))


class FileHandler(ReportHandler):
    """``GET runs/<run_id>/files/<name>``: one archived file of the run, if its manifest lists it."""

    @tornado.web.authenticated
    @answers
    async def get(self, run_id: str, name: str) -> None:
        """The file."""
        check_run_id(run_id)
        found = await self.off_loop(_archived, self.settings_, run_id)
        if name not in records.archived_names(found) or not (found[0] / name).is_file():
            raise NotFound(f"{name!r} is not a file of run {run_id}; the run's manifest lists its files", "name")
        await self._send(found[0] / name)


class DiffHandler(ShiolHandler):
    """``GET runs/<a>/diff/<b>``: what differs between two runs (as ``shiol runs diff A B --json``)."""

    @tornado.web.authenticated
    @answers
    async def get(self, first: str, second: str) -> None:
        """The differences."""
        from shiol_lib.archive.compare import diff_manifests

        check_run_id(first, "first")
        check_run_id(second, "second")
        a = (await self.off_loop(_archived, self.settings_, first))[1]
        b = (await self.off_loop(_archived, self.settings_, second))[1]
        differences = diff_manifests(a, b)
        self.answer({"first": first, "second": second, "differences": [d.to_dict() for d in differences]})


class RerunHandler(ShiolHandler):
    """``POST runs/<run_id>/rerun``: start ``shiol rerun RUN_ID`` (a new run, compared with this one)."""

    @tornado.web.authenticated
    @answers
    async def post(self, run_id: str) -> None:
        """Start the rerun."""
        check_run_id(run_id)
        self.body()  # a malformed body is refused even though none is needed
        _, manifest = await self.off_loop(_archived, self.settings_, run_id)
        start_detached(self.settings_, "rerun", run_id)
        self.answer({"started": True, "job": manifest.job, "parent_run_id": run_id}, 202)


RUN_ID = r"([^/]+)"


def handlers(base: str) -> list[tuple[str, type[ShiolHandler]]]:
    """The run routes under ``base`` (the server's base URL joined with the API prefix)."""
    return [
        (f"{base}/runs", RunsHandler),
        (f"{base}/runs/{RUN_ID}", RunHandler),
        (f"{base}/runs/{RUN_ID}/report", ReportHandler),
        (f"{base}/runs/{RUN_ID}/files/([^/]+)", FileHandler),
        (f"{base}/runs/{RUN_ID}/diff/{RUN_ID}", DiffHandler),
        (f"{base}/runs/{RUN_ID}/rerun", RerunHandler),
    ]
