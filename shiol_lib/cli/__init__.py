"""The ``shiol`` command: gathers options and calls the library. Nothing else imports it."""

from __future__ import annotations

DISTRIBUTION = "shiol-workbench"


def package_version() -> str:
    """The installed distribution's version, or the package's own when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        import shiol_lib

        return shiol_lib.__version__
