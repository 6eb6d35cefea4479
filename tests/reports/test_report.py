"""The step report and the dashboard templates, fast: what is shown first, what is hidden, what is escaped."""

from __future__ import annotations

import errno
import re
from datetime import UTC, date, datetime
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from shiol_lib.archive import folders as archive
from shiol_lib.archive.manifest import Manifest, StepRecord
from shiol_lib.domain.runs import RunStatus, StepStatus
from shiol_lib.errors import ArchiveError
from shiol_lib.execution.runner import render_html
from shiol_lib.reports import dashboard as run_index
from shiol_lib.reports.report import display_parameters, first_error, render_report
from shiol_lib.store.jobs import DeadLetter
from shiol_lib.store.monitoring import MissedSlot

HOSTILE = "<script>alert('x')</script>"
REMOTE = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//""", re.I)


def _cell(source: str, tags: list[str] | None = None, outputs: list | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(source, outputs=outputs or [])
    if tags:
        cell.metadata["tags"] = tags
    return cell


def executed_notebook(*, fail: bool = False) -> nbformat.NotebookNode:
    """An executed step notebook as papermill leaves it, optionally with a failing cell."""
    cells = [
        new_markdown_cell("# 9. A step\n\n**Purpose.** Test the report."),
        _cell('db_path: str = "../var/shiol.duckdb"', ["parameters"]),
        _cell('db_path = "/very/secret/machine/path/shiol.duckdb"\nrun_id = "R1"', ["injected-parameters"]),
        _cell("secret_code_input_here = 1", outputs=[new_output("stream", name="stdout", text="body output\n")]),
        _cell(
            "steps.show_findings(...)",
            ["findings"],
            [
                new_output(
                    "display_data",
                    data={"text/markdown": "- **No evidence of an edge** (p = 0.42)", "text/plain": "<Markdown>"},
                )
            ],
        ),
    ]
    if fail:
        cells.insert(0, _cell("", ["papermill-error-cell-tag"]))
        cells.append(
            _cell(
                "raise_it()",
                outputs=[
                    new_output(
                        "error",
                        ename="UpdateError",
                        evalue=f"bad record {HOSTILE}",
                        traceback=["Traceback ...", HOSTILE],
                    )
                ],
            )
        )
    nb = new_notebook(cells=cells)
    nb.metadata["papermill"] = {
        "parameters": {"db_path": "/very/secret/machine/path/shiol.duckdb", "run_id": "R1", "history_end": ""}
    }
    return nb


def test_report_shows_findings_first_hides_code_and_machine_paths(tmp_path: Path) -> None:
    page = render_html(
        executed_notebook(), tmp_path / "step.html", job="pipeline", target_draw_date="2024-07-01"
    ).read_text()
    assert page.index('id="findings"') < page.index('id="parameters"') < page.index('id="body"')
    assert "No evidence of an edge" in page and "body output" in page
    assert "secret_code_input_here" not in page and "/very/secret" not in page
    assert ".../shiol.duckdb" in page and "2024-07-01" in page and "pipeline" in page
    assert "status-success" in page and page.count("A step") >= 1
    assert "<script" not in page.lower() and not REMOTE.search(page)


def test_failed_report_opens_with_the_error_as_text(tmp_path: Path) -> None:
    nb = executed_notebook(fail=True)
    error = first_error(nb)
    assert error is not None and error.name == "UpdateError" and error.cell == 4  # papermill's banner not counted
    page = render_report(nb, tmp_path / "step.html").read_text()
    assert page.index('id="error"') < page.index('id="findings"')
    assert "status-failed" in page and "in cell 4 of the source notebook" in page
    assert "<script" not in page.lower() and "&lt;script&gt;" in page


def test_timeout_error_line_is_shown(tmp_path: Path) -> None:
    page = render_report(
        executed_notebook(), tmp_path / "s.html", status="timeout", error=f"limit {HOSTILE}"
    ).read_text()
    assert "status-timeout" in page and "limit &lt;script&gt;" in page


def test_a_report_whose_write_fails_leaves_the_old_page_and_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = render_report(executed_notebook(), tmp_path / "step.html")
    before = path.read_bytes()

    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.os, "replace", full_disk)
    with pytest.raises(ArchiveError, match="step.html: the disk is full"):
        render_report(executed_notebook(fail=True), path)
    assert path.read_bytes() == before  # the page as it was, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.html"]  # no temp file keeps the disk full


def test_parameters_lose_machine_paths() -> None:
    assert display_parameters({"db_path": "/a/b/c.duckdb", "seed": 3, "x": ""}) == [
        ("db_path", ".../c.duckdb"),
        ("seed", "3"),
        ("x", "(empty)"),
    ]


def _manifest(run_id: str, job: str, status: RunStatus, error: str | None = None, **extra) -> Manifest:
    started = datetime(2024, 7, 1, 3, 0, tzinfo=UTC)
    return Manifest(
        run_id=run_id,
        job=job,
        trigger="manual",
        status=status,
        started_at=started,
        steps=[
            StepRecord(
                "update_data",
                "10_update_data.ipynb",
                status=StepStatus(str(status)),
                parameters={"db_path": "/x/shiol.duckdb", "note": HOSTILE},
                error=error,
            )
        ],
        error=error,
        **extra,
    )


def test_dashboard_escapes_errors_and_shows_headline_dead_letters_and_missed(tmp_path: Path) -> None:
    good = _manifest(
        "20240701T030000Z-aaaaaa",
        "pipeline",
        RunStatus.SUCCESS,
        target_draw_date=date(2024, 7, 1),
        metrics={
            "performance_analysis": {
                "backtest_p_value": 0.42,
                "backtest_edge": False,
                "backtest_white_mean": 0.36,
                "backtest_white_ci": [0.33, 0.39],
                "backtest_white_expected": 25 / 69,
            }
        },
    )
    bad = _manifest(
        "20240701T040000Z-bbbbbb", "data_update", RunStatus.FAILED, error=f"step x: {HOSTILE}\nmore", attempt=2
    )
    for m in (good, bad):
        directory = archive.run_dir(tmp_path, m.job, m.run_id, m.started_at)
        directory.mkdir(parents=True)
        archive.write_manifest(directory, m)
    slot = datetime(2024, 6, 30, 3, 0, tzinfo=UTC)
    letter = DeadLetter(
        "d1",
        "data_update",
        slot,
        date(2024, 6, 29),
        3,
        bad.run_id,
        "fetch",
        HOSTILE,
        "10_update_data.ipynb",
        6,
        "shiol run data_update --target 2024-06-29",
        slot,
        None,
        None,
    )
    missed = MissedSlot("pipeline", slot, date(2024, 6, 29), "draw", slot)
    page = run_index.write_index(tmp_path, dead_letters=[letter], missed=[missed]).read_text()
    assert page.count("<script") == 1  # the inline filter script, nothing else
    assert "step x: &lt;script&gt;" in page and "more" not in page.split('id="runs"')[1]
    assert "No evidence of an edge" in page and "0.330 .. 0.390" in page
    assert "shiol run data_update --target 2024-06-29" in page and "missed draw" in page
    assert "attempt 2" in page and "no automatic retry (a manual run)" in page  # tests/reports/test_retries.py
    assert not REMOTE.search(page)
    run_page = (archive.find_run_dir(tmp_path, bad.run_id) / "index.html").read_text()
    assert "<script" not in run_page and "&lt;script&gt;" in run_page and 'href="manifest.json"' in run_page
    assert 'href="../../../index.html"' in run_page
