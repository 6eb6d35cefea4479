"""Papermill's nbclient engine, except that a cell stopped mid-execution is not recorded as completed.

Papermill finishes every cell in a ``finally`` clause, so a cell whose kernel was killed (timeout,
memory ceiling) or whose job was interrupted (SIGTERM) is saved with status ``completed`` and an end
time, as if it had run to its end. In the archive that would be a lie: with this engine such a cell
keeps status ``running`` and no end time, which is what :func:`runner._running_cell` and a reader of
the executed notebook look for. A cell that raised keeps papermill's ``failed``.
"""

from __future__ import annotations

import sys
from typing import Any

from papermill.engines import NBClientEngine, papermill_engines

ENGINE_NAME = "shiol"


class StepEngine(NBClientEngine):
    """The nbclient engine; a cell left by an exception in flight stays ``running``."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        """Run the notebook as papermill does, with :meth:`cell_complete` aware of a stop."""
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
