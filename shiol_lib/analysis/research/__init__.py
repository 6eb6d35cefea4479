"""Work spread beyond one thread: research sweeps on a Dask cluster, and step 4's helper process.

``engine`` is the compute seam (:func:`~shiol_lib.analysis.research.engine.run_tasks`, in process, on a
``LocalCluster`` or on a running Dask scheduler); ``tasks`` the sweep tasks (a walk-forward backtest and
a detection-power study), module-level functions that Dask workers import by name; ``synthetic``
generates fair or planted-bias histories; ``workers`` is the helper process (``python -m
shiol_lib.analysis.research.workers``) that takes half of a cold backtest's refits. Importing this package
imports none of them.
"""
