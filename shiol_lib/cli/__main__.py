"""``python -m shiol_lib.cli``: the same as the ``shiol`` console script."""

from shiol_lib.cli.main import main

main()
