"""What a step's processes use (peak resident memory, CPU time), and a memory ceiling that stops them.

The runner runs papermill in its own process against a step kernel (which may start more processes).
Around that, :func:`watching` makes a :class:`ResourceWatch` current for the thread; the runner's
``_run_papermill`` hands it the kernel with one call, :func:`watch_process`. A sampler thread then reads
the kernel's whole process tree every ``interval_s``: the tree's resident memory (summed) and each
process's CPU time (user + system, the largest value seen per process, so a process that ends keeps
what it used up to its last sample). When the tree's memory passes the ceiling, the watch kills the
whole tree; papermill, outside it, sees a dead kernel and still writes the executed notebook. The
runner then records the step ``failed`` with error class ``memory``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import psutil

MB = 1024 * 1024
SAMPLE_INTERVAL_S = 0.2

_current = threading.local()


@dataclass
class TreeUsage:
    """What one process tree used; ``exceeded`` when it passed the memory ceiling and was stopped."""

    ceiling_mb: int = 0
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    exceeded: bool = False
    samples: int = 0
    _cpu_by_pid: dict[int, float] = field(default_factory=dict, repr=False)

    def message(self) -> str:
        """Why the step was stopped, for the manifest and the log."""
        return (
            f"the step's processes used {self.peak_rss_mb or 0:.0f} MB, above the SHIOL_STEP_MEMORY_MB "
            f"ceiling of {self.ceiling_mb} MB; kernel stopped"
        )


class ResourceWatch:
    """Samples one process tree in a background thread until it ends (or :meth:`stop`)."""

    def __init__(self, ceiling_mb: int = 0, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.usage = TreeUsage(ceiling_mb=max(0, int(ceiling_mb)))
        self.interval_s = interval_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, proc: subprocess.Popen | psutil.Process | int) -> None:
        """Start sampling the tree rooted at ``proc`` (a Popen, a psutil process or a pid)."""
        pid = proc if isinstance(proc, int) else proc.pid
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        self._sample(root)
        self._thread = threading.Thread(target=self._loop, args=(root,), name=f"resources-{pid}", daemon=True)
        self._thread.start()

    def stop(self) -> TreeUsage:
        """Stop sampling (the tree has ended or is being abandoned) and return what it used."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.usage

    def _loop(self, root: psutil.Process) -> None:
        while not self._done.wait(self.interval_s):
            if not self._sample(root):
                return
            ceiling = self.usage.ceiling_mb
            if ceiling and (self.usage.peak_rss_mb or 0) > ceiling:
                self.usage.exceeded = True
                _kill([*_descendants(root), root])  # the kernel and whatever it started
                return

    def _sample(self, root: psutil.Process) -> bool:
        """Read the tree once; False when its root has ended."""
        try:
            if not root.is_running() or root.status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        rss = 0
        usage = self.usage
        for proc in [root, *_descendants(root)]:
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            usage._cpu_by_pid[proc.pid] = max(usage._cpu_by_pid.get(proc.pid, 0.0), times.user + times.system)
        usage.samples += 1
        usage.peak_rss_mb = round(max(usage.peak_rss_mb or 0.0, rss / MB), 1)
        usage.cpu_s = round(sum(usage._cpu_by_pid.values()), 3)
        return True


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill(procs: Iterable[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)


@contextlib.contextmanager
def watching(ceiling_mb: int = 0, interval_s: float = SAMPLE_INTERVAL_S) -> Iterator[TreeUsage]:
    """Make a :class:`ResourceWatch` current for this thread; yields the usage it fills in."""
    watch = ResourceWatch(ceiling_mb, interval_s)
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    try:
        yield watch.usage
    finally:
        _current.watch = previous
        watch.stop()


def watch_process(proc: subprocess.Popen | psutil.Process | int) -> None:
    """Hand a just-started process to this thread's current watch, if any (the runner's one call)."""
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.watch(proc)
