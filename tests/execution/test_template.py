"""Step kernels forked from the job's kernel template: the same kernel a fresh start gives, and nothing
left behind when the template, the kernel or the job dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from shiol_lib.execution.kernels import KernelPool
from shiol_lib.execution.runner import execute
from shiol_lib.execution.template import KernelTemplate, TemplateError

# What a step's kernel looks like from inside: everything a fresh start decides, and the warm-up.
_PROBE = """
import json, os, sys
import matplotlib, numpy
probe = {
    "cwd": os.getcwd(),
    "marker": os.environ.get("SHIOL_TEST_MARKER"),
    "outcome_env": bool(os.environ.get("SHIOL_STEP_OUTCOME")),
    "path": sys.path,
    "argv0": sys.argv[0],
    "backend": matplotlib.get_backend(),
    "session_leader": os.getsid(0) == os.getpid(),
    "stdin": os.readlink("/proc/self/fd/0"),
    "preloaded": "shiol_lib.steps" in sys.modules,
    "interactive": get_ipython().__class__.__name__,
    "pid": os.getpid(),
    "ppid": os.getppid(),
    "draw": float(numpy.random.rand()),
}
with open(out_path, "w") as handle:
    json.dump(probe, handle)
"""
_PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);"


@pytest.fixture(scope="module")
def probe_notebook(tmp_path_factory) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell('out_path: str = "probe.json"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(_PROBE),
        nbformat.v4.new_code_cell(_PLOT),
    ]
    path = tmp_path_factory.mktemp("template") / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def probe(tmp_path: Path, notebook: Path, pool: KernelPool, name: str, env: dict[str, str]) -> dict:
    out = tmp_path / f"{name}.json"
    result = execute(notebook, tmp_path / f"{name}.ipynb", {"out_path": str(out)}, cwd=tmp_path, env=env, kernels=pool)
    assert result.status == "success", result.error
    figure = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4).cells[-1].outputs  # after the injected cell
    return {**json.loads(out.read_text()), "figure": [o.get("output_type") for o in figure]}


def open_pidfds() -> set[str]:
    """This process's open pidfds (the descriptors watching forked kernels)."""
    fds = Path("/proc/self/fd")
    found = set()
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == "anon_inode:[pidfd]":
                found.add(fd.name)
        except OSError:  # closed since the listing
            continue
    return found


def environment(template: str) -> dict[str, str]:
    return {**os.environ, "SHIOL_TEST_MARKER": "marked", "SHIOL_KERNEL_TEMPLATE": template}


@pytest.mark.slow
def test_a_forked_kernel_is_the_kernel_a_fresh_start_gives(tmp_path, probe_notebook, new_children):
    pidfds = open_pidfds()
    with KernelPool() as pool:
        forked = [probe(tmp_path, probe_notebook, pool, f"forked-{i}", environment("on")) for i in range(2)]
        assert open_pidfds() - pidfds == set()  # a stopped kernel's pidfd is closed at once, not when collected
        template = pool._template
        assert template is not None
        fresh = probe(tmp_path, probe_notebook, pool, "fresh", environment("off"))
        assert pool._template is None  # another environment: the template was closed
    assert new_children() == []
    assert all(k["ppid"] == template.process.pid for k in forked)  # forked from the template
    assert fresh["ppid"] == os.getpid()  # started by this process
    differs = ("pid", "ppid", "draw")
    for kernel in forked:
        assert {k: v for k, v in kernel.items() if k not in differs} == {
            k: v for k, v in fresh.items() if k not in differs
        }
    assert fresh["preloaded"] and fresh["figure"] == ["display_data"] and fresh["stdin"] == "/dev/null"
    assert fresh["session_leader"] and fresh["backend"] == "module://matplotlib_inline.backend_inline"
    assert forked[0]["draw"] != forked[1]["draw"]  # each fork has random state of its own


@pytest.mark.slow
def test_when_the_template_dies_its_kernels_die_and_the_next_kernel_starts_fresh(
    tmp_path, probe_notebook, new_children, caplog
):
    env = environment("on")
    with KernelPool() as pool:
        first = pool.take(env, tmp_path, ahead=True)
        spare = pool._spare
        template = pool._template
        assert template is not None and spare is not None
        os.kill(template.process.pid, signal.SIGKILL)
        template.process.wait(timeout=30)
        _, alive = psutil.wait_procs([psutil.Process(first.pid), psutil.Process(spare.pid)], timeout=30)
        assert alive == []  # PR_SET_PDEATHSIG: a kernel never outlives its template
        first.stop()
        after = probe(tmp_path, probe_notebook, pool, "after", env)  # the dead spare is discarded
        assert after["preloaded"] and after["figure"] == ["display_data"]
        assert after["ppid"] == pool._template.process.pid != template.process.pid  # a new template
    assert new_children() == []


def test_the_template_refuses_another_interpreter_and_a_bad_request_then_serves(tmp_path):
    env = dict(os.environ)
    template = KernelTemplate(env, tmp_path, "", tmp_path / "template.log")
    try:
        with pytest.raises(TemplateError, match="not this interpreter's kernel launcher"):
            template.fork(["/usr/bin/python3", "-m", "ipykernel_launcher"], env, tmp_path, tmp_path / "k.log")
        assert template.serves(env, tmp_path) and not template.serves({**env, "X": "1"}, tmp_path)
        assert template._read_reply() == {"ready": True}
        template._ready = True
        for garbage in (b"not json", b'["a list"]', b'{"argv": 1}', b'{"argv": [], "env": 1, "cwd": ".", "log": "x"}'):
            template.process.stdin.write(garbage + b"\n")
            template.process.stdin.flush()
            assert "error" in template._read_reply(), garbage
        # Still serving: a kernel that ends at once (asked for its help) is forked, and is seen to end.
        kernel = template.fork(
            [sys.executable, "-m", "ipykernel_launcher", "--help"], env, tmp_path, tmp_path / "k.log"
        )
        assert kernel.wait(timeout=60) == -1 and kernel.poll() == -1
        assert "IPython: an enhanced interactive Python shell" in (tmp_path / "k.log").read_text()  # output to its log
    finally:
        template.close()
    assert template.process.returncode == 0


_JOB = """
import json, os, sys, time
from pathlib import Path
from shiol_lib.execution.kernels import KernelPool
pool = KernelPool()
kernel = pool.take(dict(os.environ), Path(sys.argv[1]), ahead=True)
print(json.dumps([pool._template.process.pid, kernel.pid, pool._spare.pid]), flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_job_killed_with_sigkill_leaves_no_template_and_no_kernel(tmp_path):
    job = subprocess.Popen([sys.executable, "-c", _JOB, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(job.stdout.readline())
        family = [psutil.Process(pid) for pid in pids]
        assert all(p.is_running() for p in family)
        time.sleep(0.5)
        job.kill()
        job.wait(timeout=30)
        _, alive = psutil.wait_procs(family, timeout=30)
        assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    finally:
        job.kill()
        job.wait()
        job.stdout.close()


def test_a_template_that_died_is_not_asked_again(tmp_path):
    env = dict(os.environ)
    template = KernelTemplate(env, tmp_path, "", tmp_path / "template.log")
    try:
        template.process.kill()
        template.process.wait(timeout=30)
        with pytest.raises(TemplateError, match="the template (ended|is gone)"):
            template.fork([sys.executable, "-m", "ipykernel_launcher"], env, tmp_path, tmp_path / "k.log")
        assert not template.serves(env, tmp_path)  # the pool closes it and starts another
    finally:
        template.close()
