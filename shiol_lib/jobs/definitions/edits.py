"""Edits of the analyst's ``jobs.toml`` that keep every comment and the order of everything else.

Each edit parses the file with tomlkit, changes one ``[[job]]`` table, validates the whole result as
the jobs file it would become (:func:`~shiol_lib.jobs.definitions.effective_jobs`), and only then
writes it atomically (a temporary file beside it, then a rename): a refused edit leaves the file as it
was. The comment lines right above a job's ``[[job]]`` line (after the last blank line) belong to
that job: removing it removes them and keeps every other comment.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from shiol_lib.errors import JobsFileError, JobsFileProblem
from shiol_lib.jobs.definitions.reading import JobSpec, effective_jobs
from shiol_lib.settings import Settings

NEW_FILE_HEADER = '# Analyst jobs of the SHIOL+ Workbench (README "Analyst jobs"); `shiol jobs check` validates it.\n'


def add_job(settings: Settings, table: dict[str, Any], *, path: Path | None = None) -> JobSpec:
    """Append a ``[[job]]`` table (plain values) to the jobs file, validated with the file; returns the job."""
    path = path or settings.jobs_path
    return _write(settings, path, _with_job(path, table))[str(table.get("name", ""))]


def check_new_job(settings: Settings, table: dict[str, Any], *, path: Path | None = None) -> JobSpec:
    """What :func:`add_job` would add, validated the same way; nothing is written."""
    path = path or settings.jobs_path
    return effective_jobs(settings, file=path, text=tomlkit.dumps(_with_job(path, table)))[str(table.get("name", ""))]


def _with_job(path: Path, table: dict[str, Any]) -> TOMLDocument:
    doc = _read(path)
    name = str(table.get("name", ""))
    if _index(doc, name) is not None:
        _refuse(path, name, "name", "a job with this name is already in the file; remove it first")
    if "job" not in doc:
        doc.append("job", tomlkit.aot())
    new = tomlkit.table()
    for key, value in table.items():
        new[key] = _inline(value)
    if doc.as_string().strip() and not doc.as_string().endswith("\n\n"):
        new.trivia.indent = "\n"  # a blank line before the new [[job]]
    _jobs(doc, path).append(new)
    return doc


def new_job_table(
    name: str,
    notebook: str,
    schedule: Any,
    *,
    description: str = "",
    parameters: dict[str, Any] | None = None,
    secrets: list[str] | None = None,
) -> dict[str, Any]:
    """The ``[[job]]`` table of a new job, keys in the order ``shiol jobs add`` writes them."""
    table: dict[str, Any] = {
        "name": name,
        **({"description": description} if description else {}),
        "notebooks": notebook,
        "schedule": schedule,
    }
    if parameters:
        table["parameters"] = parameters
    if secrets:
        table["secrets"] = list(secrets)
    return table


def notebook_entry(settings: Settings, notebook: str, *, root: Path | None = None) -> tuple[str, Path | None]:
    """What the jobs file records for ``notebook``, and where it is (None: not found).

    Kept relative when the notebooks folder or the file's folder resolves it; else (found from the
    current folder, or from ``root``: the Lab server's folder) made absolute. A notebook under ``root``
    that is also under the notebooks folder or the file's folder is recorded relative to that folder.
    """
    path = Path(notebook).expanduser()
    if root is not None and not path.is_absolute():
        path = (root / path).resolve()
        for base in (settings.notebooks_dir, settings.jobs_path.parent):
            if path.is_file() and path.is_relative_to(Path(base).resolve()):
                return str(path.relative_to(Path(base).resolve())), path
    if path.is_absolute():
        return str(path), path if path.is_file() else None
    for base in (settings.notebooks_dir, settings.jobs_path.parent):
        if (base / path).is_file():
            return notebook, base / path
    return (str(path.resolve()), path.resolve()) if path.is_file() else (notebook, None)


def remove_job(settings: Settings, name: str, *, path: Path | None = None) -> None:
    """Remove a job's table from the jobs file (its archive stays); an unknown name is refused."""
    path = path or settings.jobs_path
    doc = _read(path)
    index = _index(doc, name)
    if index is None:
        _refuse(path, name, "name", "no such job in this file")
    jobs = _jobs(doc, path)
    after = _take_trailing(jobs[index])  # blank lines, closing comments, the next job's introduction
    before = _take_trailing(jobs[index - 1]) if index > 0 else []
    # the comments right above the removed [[job]] line (after the last blank line) go with it
    before = before[: max((i + 1 for i, item in enumerate(before) if isinstance(item, Whitespace)), default=0)]
    del jobs[index]
    if index < len(jobs):  # the next job keeps its introduction
        while after and isinstance(after[0], Whitespace):
            after.pop(0)
        following: Table = jobs[index]
        following.trivia.indent = "".join(item.as_string() for item in after) + following.trivia.indent
    elif not after:  # it was the last and closed the file: drop the blank line that separated it
        while before and isinstance(before[-1], Whitespace):
            before.pop()
    else:
        before += after
    if index > 0:
        for item in before:
            jobs[index - 1].value.append(None, item)
    _write(settings, path, doc)


def set_paused(settings: Settings, name: str, paused: bool, *, path: Path | None = None) -> JobSpec:
    """Pause or resume a job, by writing or removing its ``paused`` line.

    A built-in job not in the file gets a ``[[job]]`` table holding only that; resuming it removes the
    table again when nothing else is left in it.
    """
    path = path or settings.jobs_path
    doc = _read(path)
    index = _index(doc, name)
    jobs = effective_jobs(settings, file=path)
    if name not in jobs:
        _refuse(path, name, "name", "no such job (see `shiol jobs list`)")
    if index is None:
        return add_job(settings, {"name": name, "paused": True}, path=path) if paused else jobs[name]
    table: Table = _jobs(doc, path)[index]
    if not paused:
        if "paused" in table:
            del table["paused"]
        if set(table) == {"name"}:
            remove_job(settings, name, path=path)
            return effective_jobs(settings, file=path)[name]
    elif "paused" in table:
        table["paused"] = True
    else:  # after the last key, before the comments that introduce the next job
        trailing = _take_trailing(table)
        table["paused"] = paused
        for item in trailing:
            table.value.append(None, item)
    return _write(settings, path, doc)[name]


def _read(path: Path) -> TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.parse(NEW_FILE_HEADER)
    except (OSError, UnicodeDecodeError) as err:
        raise JobsFileError([JobsFileProblem(str(path), None, None, f"cannot read: {err}")]) from err
    try:
        return tomlkit.parse(text)
    except TOMLKitError as err:
        raise JobsFileError([JobsFileProblem(str(path), None, None, f"not valid TOML: {err}")]) from err


def _jobs(doc: TOMLDocument, path: Path) -> AoT:
    jobs = doc.get("job")
    if not isinstance(jobs, AoT):
        raise JobsFileError([JobsFileProblem(str(path), None, "job", "must be [[job]] tables")])
    return jobs


def _index(doc: TOMLDocument, name: str) -> int | None:
    if "job" not in doc:
        return None
    return next((i for i, table in enumerate(doc["job"]) if table.get("name") == name), None)


def _take_trailing(table: Table) -> list[Comment | Whitespace]:
    """Remove and return the comments and blank lines after a table's last key (what introduces the next)."""
    body = table.value.body
    trailing: list[Comment | Whitespace] = []
    while body and body[-1][0] is None:
        item = body[-1][1]
        if not isinstance(item, (Comment, Whitespace)):
            break
        trailing.insert(0, item)
        del body[-1]
    return trailing


def _inline(value: Any) -> Any:
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        for key, item in value.items():
            inline[key] = _inline(item)
        return inline
    return value


def _refuse(path: Path, name: str, field: str, reason: str) -> NoReturn:
    raise JobsFileError([JobsFileProblem(str(path), name or None, field, reason)])


def _write(settings: Settings, path: Path, doc: TOMLDocument) -> dict[str, JobSpec]:
    text = tomlkit.dumps(doc)
    jobs = effective_jobs(settings, file=path, text=text)  # refuses before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return jobs
