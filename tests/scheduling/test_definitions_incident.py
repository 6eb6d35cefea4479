"""A jobs file that stops validating is one incident: opened once with its problems, the last good definitions
kept in the plan, cleared once when the file validates again (the job it names never has to succeed)."""

from __future__ import annotations

from pathlib import Path

from shiol_lib.domain.runs import IncidentKind
from shiol_lib.scheduling.scheduler import Scheduler
from shiol_lib.settings import load_settings
from shiol_lib.store.incidents import list_incidents

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "writes_slot.ipynb"
NEVER = "0 3 1 1 *"
GOOD = f'[[job]]\nname = "weekly"\nnotebooks = "{NOTEBOOK}"\nschedule = {{ cron = "0 7 * * 1" }}\n'


def test_a_broken_edit_opens_one_incident_and_the_fix_clears_it(tmp_path):
    settings = load_settings(
        {"SHIOL_HOME": str(tmp_path), **{v: NEVER for v in ("SHIOL_PIPELINE_CRON", "SHIOL_UPDATE_CRON")}}
    )
    settings.jobs_path.write_text(GOOD, encoding="utf-8")
    scheduler = Scheduler(settings)
    assert "weekly" in scheduler.replan().next

    settings.jobs_path.write_text(GOOD.replace('name = "weekly"', 'name = "weekly"\ncolour = "red"'), encoding="utf-8")
    broken = scheduler.replan()
    assert "weekly" in broken.next  # the last good definition stays planned
    assert [(p["job"], p["field"]) for p in broken.definitions] == [("weekly", "colour")]
    scheduler.replan()  # planned again: still the one incident
    opened = list_incidents(scheduler.store())
    assert [(i.kind, i.job, i.cleared_at) for i in opened] == [(IncidentKind.DEFINITIONS, "weekly", None)]
    assert "colour" in opened[0].last_message

    settings.jobs_path.write_text(GOOD.replace("}", ""), encoding="utf-8")
    other = scheduler.replan()  # another problem, of no job: the first incident ends, a new one opens
    assert [(p["job"], p["field"]) for p in other.definitions] == [(None, None)]
    assert "not valid TOML" in other.definitions[0]["reason"] and "weekly" in other.next
    rows = list_incidents(scheduler.store())
    assert len(rows) == 2 and [i.cleared_at is None for i in rows] == [True, False]  # newest first

    settings.jobs_path.write_text(GOOD + "\n# fixed\n", encoding="utf-8")
    fixed = scheduler.replan()
    assert fixed.definitions == [] and fixed.alerts == []
    incidents = list_incidents(scheduler.store())
    assert all(i.cleared_at is not None for i in incidents)
    assert any("validates again" in i.last_message for i in incidents)
