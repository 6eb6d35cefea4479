"""Every byte of ``runs/``: the derived pages against their record, and anything nobody accounts for.

The archive's layout, and what accounts for each part:

- ``runs/ledger.jsonl`` (its own chain), ``runs/.ledger.lock`` (empty), ``runs/pages.json`` (the pages
  record: :mod:`shiol_lib.archive.pages`), ``runs/index.html`` (the dashboard, in the record) and the
  dashboard's month chunks ``runs/_index/runs-YYYY-MM.js`` (each in the record);
- ``runs/<job>/index.html``: the job's page (in the record);
- ``runs/<job>/<YYYY-MM-DD>/<run_id>/``: a run folder the ledger names (its files are checked against
  its manifest, its page against the record), or one in flight (its process alive on this host with a
  fresh heartbeat: the caller decides which runs are);
- ``runs/reruns/<run_id>/<YYYYMMDDTHHMMSSZ>/``: the outputs of a step re-executed by hand (the command
  ``shiol runs show`` prints) for a run the ledger names; they are not part of the archive, so what
  lies inside a timestamp folder is not checked, but nothing else may sit in ``reruns/``.

Anything else, a file or a folder at any depth, is reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from shiol_lib.archive.folders import RUN_ID_PATTERN
from shiol_lib.archive.hashing import sha256_file
from shiol_lib.archive.ledger import LEDGER, LOCK, Head, LedgerLine, LedgerProblem
from shiol_lib.archive.pages import CHUNK_DIR, PAGE, PAGES, PagesRecord, is_page, read_pages
from shiol_lib.errors import ArchiveError

RERUNS = "reruns"
DAY_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
STAMP_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


def check_pages(
    runs_dir: Path,
    lines: list[LedgerLine],
    *,
    key: str | None,
    digest: Callable[[Path], str | None] | None = None,
) -> tuple[list[LedgerProblem], PagesRecord | None]:
    """Problems of the pages record and of each page it records; the record (None when absent or unreadable)."""
    try:
        record = read_pages(runs_dir)
    except ArchiveError as err:
        return [LedgerProblem(None, None, str(err))], None
    if record is None:
        return [], None
    problems = []
    if key and record.hmac is None:
        problems.append(_problem(f"the pages record {PAGES} is not signed with SHIOL_LEDGER_KEY"))
    elif key and not record.signature_ok(key):
        problems.append(
            _problem(f"the signature of the pages record {PAGES} does not match SHIOL_LEDGER_KEY (forged or edited)")
        )
    head = Head(len(lines), lines[-1].chain_hash) if lines else None
    if record.head != head:
        shown = f"entry {record.head.seq}" if record.head else "an empty ledger"
        problems.append(
            _problem(
                f"the pages show {shown} but the ledger is at entry {len(lines)}: they were put back from an older "
                "copy, or their last rewrite failed (`shiol runs pages` rewrites them from the manifests)"
            )
        )
    root = os.path.join(os.fspath(runs_dir), "")
    for rel, expected in sorted(record.pages.items()):
        if not is_page(rel):
            problems.append(_problem(f"the pages record names {rel!r}, which is not a page of the archive"))
            continue
        path = Path(root + rel)
        found = (digest or _sha256)(path)
        if found is None and not path.is_file():
            problems.append(_problem(f"page {rel} is missing (the pages record has its hash)"))
        elif found != expected:
            problems.append(
                _problem(f"page {rel} was changed after it was written (its sha256 differs from the pages record's)")
            )
    return problems, record


def unknown_paths(
    runs_dir: Path,
    *,
    run_folders: dict[Path, str],
    ledger_runs: set[str],
    in_flight: set[str],
    pages: set[str],
    running: set[str] | None = None,
) -> list[LedgerProblem]:
    """Everything in ``runs_dir`` that nothing accounts for (see the module's layout).

    Args:
        runs_dir: The archive folder.
        run_folders: The run folders the ledger's entries were checked against, with their run id.
        ledger_runs: Every run id the ledger names.
        in_flight: Run ids whose process is alive on this host with a fresh heartbeat.
        pages: The relative paths of the pages the pages record holds.
        running: Run ids the store says are running (named as such when not in flight).
    """
    walk = _Walk(runs_dir, run_folders, ledger_runs, in_flight, pages, running or set())
    for path in _children(runs_dir):
        if path.name in (LEDGER, PAGES) and _is_file(path):
            continue
        if path.name == LOCK and _is_file(path):
            if path.stat().st_size:
                walk.report(path, "is the ledger lock but holds data")
        elif path.name == PAGE and _is_file(path):
            walk.page(path)
        elif path.name == RERUNS and _is_dir(path):
            walk.reruns(path)
        elif path.name == CHUNK_DIR and _is_dir(path):
            for chunk in _children(path):
                if _is_file(chunk):
                    walk.page(chunk)
                else:
                    walk.report(chunk, "is not a chunk of the dashboard (the pages record does not account for it)")
        elif _is_dir(path):
            walk.job(path)
        else:
            walk.report(path, "is not part of the archive (the ledger does not account for it)")
    return walk.problems


class _Walk:
    def __init__(
        self,
        runs_dir: Path,
        run_folders: dict[Path, str],
        ledger_runs: set[str],
        in_flight: set[str],
        pages: set[str],
        running: set[str],
    ) -> None:
        self.runs_dir, self.run_folders, self.ledger_runs = runs_dir, run_folders, ledger_runs
        self.in_flight, self.pages, self.running = in_flight, pages, running
        self.problems: list[LedgerProblem] = []

    def report(self, path: Path, text: str, run_id: str | None = None) -> None:
        kind = "folder" if _is_dir(path) else "link" if path.is_symlink() else "file"
        self.problems.append(LedgerProblem(None, run_id, f"the {kind} {self._rel(path)} {text}"))

    def page(self, path: Path) -> None:
        if self._rel(path) not in self.pages:
            self.report(
                path,
                "is a page the workbench did not write (not in the pages record; "
                "`shiol runs pages` rewrites the pages from the manifests)",
            )

    def job(self, folder: Path) -> None:
        children = _children(folder)
        if not children:
            self.report(folder, "is empty: no run of the ledger is in it")
        for path in children:
            if DAY_PATTERN.match(path.name) and _is_dir(path):
                self.day(path)
            elif path.name == PAGE and _is_file(path):  # the job's page (reports.job_pages)
                self.page(path)
            else:
                self.report(path, "is not a day folder of the archive (the ledger does not account for it)")

    def day(self, folder: Path) -> None:
        children = _entries(folder)
        if not children:
            self.report(folder, "is empty: no run of the ledger is in it")
        for path, real_dir in children:
            run_id = path.name if RUN_ID_PATTERN.match(path.name) else None
            if path in self.run_folders and real_dir:
                page = path / PAGE
                if page.exists() or page.is_symlink():
                    self.page(page)
            elif run_id and run_id in self.in_flight and real_dir:
                continue
            elif run_id and run_id in self.ledger_runs and real_dir:
                self.report(path, "is a second folder of a run the ledger names elsewhere", run_id)
            elif run_id and real_dir:
                why = (
                    (
                        "the store says it is running, but its process is not alive on this host with a fresh "
                        "heartbeat (a dead run, closed as crashed by the scheduler or the next `shiol run`; or a "
                        "row written by hand)"
                    )
                    if run_id in self.running
                    else "nor running on this host"
                )
                self.problems.append(LedgerProblem(None, run_id, f"the run folder {path} is not in the ledger: {why}"))
            else:
                self.report(path, "is not a run folder (the ledger does not account for it)")

    def reruns(self, folder: Path) -> None:
        for path in _children(folder):
            known = path.name in self.ledger_runs or path.name in self.in_flight
            if not (_is_dir(path) and RUN_ID_PATTERN.match(path.name) and known):
                self.report(path, "is not the rerun folder of a run the ledger names")
                continue
            for stamp in _children(path):
                if not (_is_dir(stamp) and STAMP_PATTERN.match(stamp.name)):
                    self.report(stamp, "is not a rerun's timestamp folder (YYYYMMDDTHHMMSSZ)", path.name)

    def _rel(self, path: Path) -> str:
        text, root = os.fspath(path), os.path.join(os.fspath(self.runs_dir), "")
        return text[len(root) :] if text.startswith(root) else path.relative_to(self.runs_dir).as_posix()


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []  # an unreadable folder: what it should hold is reported missing by the entry checks


def _entries(folder: Path) -> list[tuple[Path, bool]]:
    """A folder's children, each with whether it is a folder (not a link to one), from one listing."""
    try:
        with os.scandir(folder) as found:
            return sorted((Path(e.path), e.is_dir(follow_symlinks=False)) for e in found)
    except OSError:
        return []


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except ArchiveError:
        return None


def _problem(text: str) -> LedgerProblem:
    return LedgerProblem(None, None, text)
