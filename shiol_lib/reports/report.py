"""A step's archived HTML report: what an analyst reads, rendered from the executed notebook.

:func:`render_report` walks the stages in order: split the executed notebook into its parts (the
``findings`` cells, the parameters, the error of a failed cell, the rest) -> render the cells body-only
with nbconvert's ``basic`` template, code inputs and prompts left out -> put them in our page template
(title with run id, job, target drawing and status; the error first when the step failed; then the
findings, the parameters as a small table and the body). The page is self-contained: inline CSS, images
as data URIs, no script, stylesheet or font from anywhere else. The ``.ipynb`` keeps everything.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from shiol_lib.archive.folders import write_atomic
from shiol_lib.domain.runs import StepStatus

if TYPE_CHECKING:  # the notebooks are handed in: rendering an index needs no nbformat
    import nbformat

FINDINGS_TAG = "findings"
_ADDED_BY_PAPERMILL = frozenset({"injected-parameters", "papermill-error-cell-tag"})
_HIDDEN = _ADDED_BY_PAPERMILL | {"parameters"}

_environment: jinja2.Environment | None = None


def template_environment() -> jinja2.Environment:
    """The jinja2 environment of the package's templates, autoescaping everything not marked safe."""
    global _environment  # noqa: PLW0603 - built once, on first use, never at import
    if _environment is None:
        _environment = jinja2.Environment(
            loader=jinja2.PackageLoader("shiol_lib.reports", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _environment


@dataclass(frozen=True)
class CellError:
    """The first error a notebook's cells raised: class, message, the source cell and its first line."""

    name: str
    message: str
    cell: int | None  # index in the source notebook (papermill's own cells not counted)
    cell_line: str


def source_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    """Cells of an executed notebook with their index in the source notebook (papermill's cells left out)."""
    kept = [c for c in nb.cells if not _ADDED_BY_PAPERMILL & set(_tags(c))]
    return list(enumerate(kept))


def first_error(nb: nbformat.NotebookNode) -> CellError | None:
    """The first error output of the notebook's own cells, if any."""
    for index, cell in source_cells(nb):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                lines = cell.source.strip().splitlines()
                return CellError(str(out.get("ename")), str(out.get("evalue")), index, lines[0][:120] if lines else "")
    return None


def display_parameters(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows for the report: a machine path shows only its file name."""
    rows = []
    for name, value in sorted(parameters.items()):
        text = value if isinstance(value, str) else repr(value)
        if isinstance(value, str) and PurePath(value).is_absolute():
            text = f".../{PurePath(value).name}"
        rows.append((name, text if text != "" else "(empty)"))
    return rows


def render_report(
    nb: nbformat.NotebookNode,
    path: Path,
    *,
    run_id: str | None = None,
    job: str | None = None,
    target_draw_date: str | None = None,
    status: StepStatus | None = None,
    error: str | None = None,
) -> Path:
    """Render an executed notebook to the self-contained report at ``path`` (written atomically).

    Args:
        nb: The executed notebook (left unchanged).
        path: Where the HTML goes.
        run_id: The run (default: the notebook's ``run_id`` parameter).
        job: The job the step belongs to.
        target_draw_date: The drawing the run predicts (default: the notebook's parameter).
        status: The step's status (default: ``failed`` when a cell raised or papermill recorded an
            exception, else ``success``).
        error: The step's error line when no cell recorded one (a timeout, a dead kernel).

    Returns:
        ``path``.
    """
    papermill_meta = nb.metadata.get("papermill", {})
    parameters = dict(papermill_meta.get("parameters") or {})
    cell_error = first_error(nb)
    if status is None:
        status = StepStatus.FAILED if cell_error or papermill_meta.get("exception") else StepStatus.SUCCESS
    cells = [c for _, c in source_cells(nb)]
    findings = [c for c in cells if FINDINGS_TAG in _tags(c)]
    body = [c for c in cells if FINDINGS_TAG not in _tags(c) and not _HIDDEN & set(_tags(c))]
    title = _title(cells, path)
    body = [_without_title(c, title) for c in body]
    page = (
        template_environment()
        .get_template("report.html")
        .render(
            title=title,
            run_id=run_id or str(parameters.get("run_id") or ""),
            job=job or "",
            target_draw_date=target_draw_date or str(parameters.get("target_draw_date") or ""),
            status=str(status),
            cell_error=cell_error,
            error=error if cell_error is None else None,
            parameters=display_parameters(parameters),
            findings=_render_cells(nb, findings) if findings else None,
            body=_render_cells(nb, body),
            notebook=path.with_suffix(".ipynb").name,
            css=Markup(_css()),
        )
    )
    write_atomic(path, page.encode("utf-8"))  # a full disk leaves no half-written page, nor its temp file
    return path


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _title(cells: list[nbformat.NotebookNode], path: Path) -> str:
    for cell in cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def _without_title(cell: nbformat.NotebookNode, title: str) -> nbformat.NotebookNode:
    """The cell without the ``# title`` line the page header already shows."""
    if cell.cell_type != "markdown" or f"# {title}" not in cell.source:
        return cell
    cell = copy.deepcopy(cell)
    cell.source = "\n".join(line for line in cell.source.splitlines() if line.strip() != f"# {title}")
    return cell


def _render_cells(nb: nbformat.NotebookNode, cells: list[nbformat.NotebookNode]) -> Markup:
    """Cells rendered body-only (nbconvert's ``basic`` template), without code inputs or prompts."""
    part = copy.deepcopy(nb)
    part.cells = copy.deepcopy(cells)
    for cell in part.cells:  # the first markdown title is ours; the rest renders as the notebook has it
        cell.metadata.pop("tags", None)
    html, _ = _exporter().from_notebook_node(part)
    return Markup(html)  # nbconvert escapes text outputs; markdown and HTML outputs are the notebook's own


@functools.cache
def _exporter() -> Any:
    """One HTML exporter per process: building one compiles its templates (~0.3 s), rendering reuses them."""
    from nbconvert import HTMLExporter  # heavy import, only when rendering

    quiet = logging.getLogger(f"{__name__}.nbconvert")  # plots have no alt text; not worth a warning each
    quiet.setLevel(logging.ERROR)
    return HTMLExporter(
        log=quiet,
        template_name="basic",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        anchor_link_text="",
    )


def _css() -> str:
    return (Path(__file__).parent / "templates" / "report.css").read_text(encoding="utf-8")
