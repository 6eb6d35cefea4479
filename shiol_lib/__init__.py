"""SHIOL+ Workbench: an honest analyst library for US Powerball draw history.

Entry points: :func:`shiol_lib.settings.load_settings`, :class:`shiol_lib.store.Store`,
:func:`shiol_lib.ingest.update.update_draws`. Importing the package does nothing else.
"""

__version__ = "0.1.0"
