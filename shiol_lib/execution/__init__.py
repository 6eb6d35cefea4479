"""Running one notebook in a kernel of its own: papermill, kernels, resources and the watchdog.

Knows nothing of jobs, runs or the archive; never imports the analysis or :mod:`shiol_lib.steps`
(notebooks reach those inside their own kernels).
"""
