import json
import subprocess
import sys
from pathlib import Path

import nbformat
import psutil
import pytest

from shiol_lib.domain.runs import ErrorClass, StepStatus
from shiol_lib.errors import ParameterError, RunnerError
from shiol_lib.execution.outcome import ReportTitle
from shiol_lib.execution.parameters import check_parameters, read_parameters
from shiol_lib.execution.runner import execute

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def assert_no_child_left(new_children) -> None:
    """Nothing this test started (kernel, watchdog, a cell's child) outlived the step."""
    alive = new_children()
    assert alive == [], [p.cmdline() for p in alive]


def test_read_parameters_gives_types_defaults_and_help():
    params = read_parameters(NOTEBOOKS / "adds_numbers.ipynb")
    assert list(params) == ["a", "b", "label", "out_path"]
    assert (params["a"].type_name, params["a"].default, params["a"].help) == ("int", "1", "first addend")
    assert not params["a"].required


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"c": 1}, "unknown parameter 'c'"),
        ({"a": "1"}, "parameter 'a' wants int, got str '1'"),
        ({"a": True}, "parameter 'a' wants int, got bool True"),
        ({"b": "x"}, "parameter 'b' wants float, got str 'x'"),
    ],
)
def test_bad_parameters_are_refused_before_running(values, problem):
    with pytest.raises(ParameterError) as caught:
        check_parameters(NOTEBOOKS / "adds_numbers.ipynb", values)
    assert problem in caught.value.problems
    assert "declared: a: int, b: float" in str(caught.value)


def test_notebook_tools_load_without_the_iri_grammars_which_stay_importable():
    """A fresh process reads a notebook without building rfc3987_syntax's grammars, and can import it later."""
    pytest.importorskip("rfc3987_syntax")  # installed with jupyter-events' jsonschema extras
    code = (
        "import sys; from pathlib import Path\n"
        "from shiol_lib.execution.parameters import read_parameters\n"
        f"assert 'a' in read_parameters(Path({str(NOTEBOOKS / 'adds_numbers.ipynb')!r}))\n"
        "assert 'nbformat' in sys.modules and 'rfc3987_syntax' not in sys.modules\n"
        "import rfc3987_syntax\n"
        "assert rfc3987_syntax.is_valid_syntax('iri', 'https://example.org/a')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_an_int_is_a_valid_float():
    assert check_parameters(NOTEBOOKS / "adds_numbers.ipynb", {"b": 3}) == {"b": 3}


def test_missing_required_parameter_is_refused():
    with pytest.raises(ParameterError, match="missing required parameter 'target'"):
        check_parameters(NOTEBOOKS / "required_parameter.ipynb", {"repeat": 2})
    assert check_parameters(NOTEBOOKS / "required_parameter.ipynb", {"target": "x"}) == {"target": "x"}


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    with pytest.raises(RunnerError, match="0 cells tagged 'parameters'"):
        execute(NOTEBOOKS / "no_parameters.ipynb", tmp_path / "out.ipynb", {})
    assert not (tmp_path / "out.ipynb").exists()


def test_unknown_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(RunnerError, match="does not exist"):
        execute(NOTEBOOKS / "nope.ipynb", tmp_path / "out.ipynb", {})


@pytest.mark.slow
def test_success_writes_notebook_html_and_injected_parameters(tmp_path, new_children):
    out = tmp_path / "adds.ipynb"
    result = execute(NOTEBOOKS / "adds_numbers.ipynb", out, {"a": 2, "b": 0.5, "out_path": str(tmp_path / "r.txt")})
    assert result.status == "success" and result.error is None
    assert (tmp_path / "r.txt").read_text() == "sum=2.5"
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "a = 2" in injected[0].source
    assert result.html is not None and "sum 2.5" in result.html.read_text()
    assert Path(result.command[0]).name == "papermill"  # this environment's, by absolute path
    assert list(result.command[1:3]) == [str(NOTEBOOKS / "adds_numbers.ipynb"), str(out)]
    assert json.loads(result.command[4]) == {"a": 2, "b": 0.5, "out_path": str(tmp_path / "r.txt")}
    assert "Executing notebook with kernel" in result.log.read_text()  # papermill's log, per step
    assert_no_child_left(new_children)


@pytest.mark.slow
def test_cell_error_is_recorded_and_the_notebook_still_archived(tmp_path, new_children):
    out = tmp_path / "broken.ipynb"
    result = execute(NOTEBOOKS / "broken.ipynb", out, {})
    assert result.status == "failed" and result.error_class == "cell error"
    assert result.failed_cell == 3  # markdown, parameters, print, the division
    assert "ZeroDivisionError" in result.error
    assert out.exists() and not out.with_name("broken.ipynb.partial").exists()
    html = result.html.read_text()
    assert "ZeroDivisionError" in html and "before the failure" in html
    assert_no_child_left(new_children)


@pytest.mark.slow
def test_timeout_kills_kernel_and_children_and_keeps_the_partial_notebook(tmp_path, new_children):
    out = tmp_path / "sleeps.ipynb"
    pid_file = tmp_path / "child.pid"
    # a generous limit: the cell must start even when the kernel starts slowly on a loaded machine
    result = execute(NOTEBOOKS / "sleeps_forever.ipynb", out, {"pid_file": str(pid_file)}, timeout_s=30)
    assert result.status == "timeout" and result.error_class == "timeout"
    child = int(pid_file.read_text())
    gone = not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert gone, f"the kernel's child {child} outlived the timeout"
    assert out.exists() and result.html.exists()
    nb = nbformat.read(out, as_version=4)
    assert any("started" in "".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells)
    assert result.failed_cell == 3  # the sleeping cell was running when the limit passed
    assert_no_child_left(new_children)


@pytest.mark.slow
def test_kernel_death_is_classified(tmp_path, new_children):
    result = execute(NOTEBOOKS / "kernel_dies.ipynb", tmp_path / "dies.ipynb", {})
    assert result.status == "failed" and result.error_class == "kernel death"
    assert_no_child_left(new_children)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "status", "error_class"),
    [
        ("waiting", "waiting", "waiting"),  # a subclass of DrawNotPublishedError under another name
        ("fetch", "failed", "fetch"),  # a subclass of FetchError
        ("plain", "failed", "cell error"),  # not a workbench error
    ],
)
def test_how_a_step_ended_comes_from_the_exception_class_not_its_name(
    tmp_path, new_children, kind, status, error_class
):
    out = tmp_path / f"{kind}.ipynb"
    result = execute(
        NOTEBOOKS / "raises_renamed_errors.ipynb",
        out,
        {"kind": kind},
        title=ReportTitle("20240702T032900Z-a1b2c3", "pipeline", "2024-07-03"),
    )
    assert result.status == status and result.error_class == error_class
    assert isinstance(result.status, StepStatus)
    assert result.error_class is not None and isinstance(result.error_class, ErrorClass)
    assert result.failed_cell == 3
    html = result.html.read_text()  # rendered by execute, titled with the run, job, drawing and status
    assert "20240702T032900Z-a1b2c3" in html and "2024-07-03" in html and status in html
    assert_no_child_left(new_children)
