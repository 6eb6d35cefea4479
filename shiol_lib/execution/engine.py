"""Papermill's nbclient engine, except that a cell stopped mid-execution is not recorded as completed.

Papermill finishes every cell in a ``finally`` clause, so a cell whose kernel was killed (timeout,
memory ceiling) or whose job was interrupted (SIGTERM) is saved with status ``completed`` and an end
time, as if it had run to its end. In the archive that would be a lie: with this engine such a cell
keeps status ``running`` and no end time, which is what :func:`outcome.find_running_cell` and a reader of
the executed notebook look for. A cell that raised keeps papermill's ``failed``.

Given ``redact`` (papermill passes its extra keyword arguments to the engine), every save writes the
redacted copy of the notebook, and the notebook handed back to papermill (which writes it once more,
and reads a failing cell's error from it) is the redacted one: nothing unredacted reaches the file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from papermill.engines import NBClientEngine, papermill_engines
from papermill.iorw import write_ipynb

ENGINE_NAME = "shiol"


class StepEngine(NBClientEngine):
    """The nbclient engine; a cell left by an exception in flight stays ``running``."""

    @classmethod
    def execute_managed_notebook(
        cls, nb_man: Any, kernel_name: str, redact: Callable[[Any], Any] | None = None, **kwargs: Any
    ) -> Any:
        """Run the notebook as papermill does, with :meth:`cell_complete` aware of a stop, saves redacted."""
        if redact is None:
            return cls._execute(nb_man, kernel_name, **kwargs)

        def save(**kwargs: Any) -> None:
            if kwargs.get("nb"):  # as papermill's own save: a caller may hand a new copy
                nb_man.nb = kwargs["nb"]
            if nb_man.output_path:
                write_ipynb(redact(nb_man.nb), nb_man.output_path)
            nb_man.last_save_time = nb_man.now()

        nb_man.save = save
        try:
            return cls._execute(nb_man, kernel_name, **kwargs)
        finally:  # papermill completes, writes and checks the notebook the engine leaves in nb_man.nb
            nb_man.nb = redact(nb_man.nb)

    @classmethod
    def _execute(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        complete = nb_man.cell_complete

        def cell_complete(cell: Any, cell_index: int | None = None, **more: Any) -> Any:
            stopped = sys.exc_info()[0] is not None  # called from papermill's finally, an exception in flight
            if stopped and cell.metadata.papermill.get("status") == nb_man.RUNNING:
                nb_man.save()  # as it stood when it was stopped: running, no end time
                return None
            return complete(cell, cell_index=cell_index, **more)

        nb_man.cell_complete = cell_complete
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register(ENGINE_NAME, StepEngine)
