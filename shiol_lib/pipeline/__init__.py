"""The host side of a run: the notebook runner, jobs as ordered steps, the archive, the ledger, the index.

Never imports the analysis or :mod:`shiol_lib.steps`: notebooks reach those inside their own kernels.
"""
