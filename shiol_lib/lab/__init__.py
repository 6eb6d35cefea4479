"""The workbench inside JupyterLab: a Jupyter Server extension with the REST API of the Runs and Jobs panels.

All routes are under ``/shiol/api/v1/`` behind Jupyter's own token and XSRF checks: ``runs`` (list,
one run, its report and files, diff, rerun), ``jobs`` (list, one job, add, check, run now, pause,
resume), ``plan`` and ``notebooks/parameters``. :mod:`shiol_lib.lab.records` builds the JSON the CLI
prints too. Importing this package does nothing; Jupyter calls :func:`_load_jupyter_server_extension`.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension this package provides (Jupyter's discovery hook)."""
    return [{"module": "shiol_lib.lab"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the handlers on the server's web app, with the workbench settings of its environment."""
    from jupyter_server.utils import url_path_join

    from shiol_lib.lab import jobs, runs
    from shiol_lib.lab.common import PREFIX, workbench_settings

    web_app = serverapp.web_app
    web_app.settings["shiol_settings"] = workbench_settings()
    web_app.settings["shiol_root"] = serverapp.root_dir
    base = url_path_join(web_app.settings["base_url"], PREFIX)
    web_app.add_handlers(".*$", [*runs.handlers(base), *jobs.handlers(base)])
    serverapp.log.info("SHIOL+ Workbench API at %s", base)
