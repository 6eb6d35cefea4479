"""The SHIOL+ scheduler app, for ``python schedules.py`` in a checkout.

The app itself (its tasks and their condition) is :mod:`shiol_lib.scheduling.app`, inside the package so
that an installed wheel runs it too (``shiol schedule run``). This file only starts it.
"""

from shiol_lib.scheduling.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
