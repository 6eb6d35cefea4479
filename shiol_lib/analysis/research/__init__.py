"""Research sweeps: independent, seeded tasks that a Dask cluster (or this process) may run anywhere.

``engine`` is the compute seam (:func:`~shiol_lib.analysis.research.engine.run_tasks`, in process, on a
``LocalCluster`` or on a running Dask scheduler); ``tasks`` the sweep tasks (a walk-forward backtest and
a detection-power study), module-level functions that Dask workers import by name; ``synthetic``
generates fair or planted-bias histories. Importing this package imports none of them.
"""
