"""The "Schedule…" dialog's body (ADD) read into the ``[[job]]`` table ``shiol jobs add`` would write.

ADD = ``{"notebook", "name", "description"?, "schedule": {"cron", "timezone"?} | {"after_drawing"} |
"manual", "parameters"?: {name: value}, "secrets"?: [VAR...]}``. A wrong JSON type is a 400 naming
the field; what the values mean (a slug, a cron, a notebook's declared parameters) is the jobs file's
validation, the same as ``shiol jobs check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shiol_lib.errors import JobsFileError
from shiol_lib.lab.common import BadRequest
from shiol_lib.settings import Settings

SCHEDULE_SHAPES = '{"cron": "0 7 * * 1", "timezone": "America/New_York"}, {"after_drawing": "30m"} or "manual"'


def notebook_under(root: Path, text: str, field: str) -> Path:
    """``text`` (relative to ``root``, or absolute) as a path that must stay under ``root`` (else 400)."""
    base = Path(root).resolve()
    path = (base / Path(text).expanduser()).resolve()
    if not path.is_relative_to(base):
        raise BadRequest(f"{text!r} is outside the Lab's folder {base}; choose a notebook under it", field)
    return path


def job_table(settings: Settings, root: Path, body: dict[str, Any]) -> dict[str, Any]:
    """The table to add for ``body``; a missing or wrongly typed field is a 400 naming it."""
    from shiol_lib.jobs.definitions.edits import new_job_table, notebook_entry

    unknown = sorted(set(body) - {"notebook", "name", "description", "schedule", "parameters", "secrets"})
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; ADD takes notebook, name, description, schedule, parameters, secrets",
            unknown[0],
        )
    notebook = _text(body, "notebook")
    name = _text(body, "name")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise BadRequest(f"description is a {_kind(description)}; give text", "description")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(f"parameters is a {_kind(parameters)}; give an object of name: value", "parameters")
    secrets = body.get("secrets", [])
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        raise BadRequest("secrets must be a list of environment variable names (text)", "secrets")
    path = notebook_under(root, notebook, "notebook")
    entry, _ = notebook_entry(settings, str(path.relative_to(Path(root).resolve())), root=Path(root))
    return new_job_table(
        name,
        entry,
        _schedule(body.get("schedule")),
        description=description,
        parameters=parameters or None,
        secrets=secrets,
    )


def problems_of(err: JobsFileError) -> list[dict[str, Any]]:
    """The validation's problems as ``[{"field", "reason"}]``."""
    return [{"field": p.field, "reason": p.reason} for p in err.problems]


def _schedule(raw: Any) -> Any:
    if raw == "manual":
        return raw
    if not isinstance(raw, dict) or not raw:
        raise BadRequest(f"schedule {raw!r} is not a schedule; give {SCHEDULE_SHAPES}", "schedule")
    if set(raw) <= {"cron", "timezone"} and isinstance(raw.get("cron"), str):
        if not isinstance(raw.get("timezone", ""), str):
            raise BadRequest("schedule.timezone must be text such as America/New_York", "schedule.timezone")
        return {"cron": raw["cron"], **({"timezone": raw["timezone"]} if raw.get("timezone") else {})}
    if set(raw) == {"after_drawing"}:
        delay = raw["after_drawing"]
        if isinstance(delay, bool) or not isinstance(delay, (str, int)):
            raise BadRequest('schedule.after_drawing must be a delay such as "30m" or seconds', "schedule")
        return {"after_drawing": int(delay) if isinstance(delay, str) and delay.isdigit() else delay}
    raise BadRequest(f"schedule {raw!r} is not a schedule; give {SCHEDULE_SHAPES}", "schedule")


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{key} is {'missing' if value is None else 'a ' + _kind(value)}; give it as text", key)
    return value


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", bool: "boolean", int: "number", float: "number"}.get(type(value), "text")
