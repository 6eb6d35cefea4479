"""Getting drawings in: the sources (HTTP and the bundled snapshot), record parsing and validation, the update.

Imports the domain and the store; never the analysis, the pipeline or the scheduler.
"""
