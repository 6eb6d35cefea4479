"""The evidence a run leaves: run folders and atomic writes, manifests, the ledger, verify, compare and retention.

Reads and writes files under ``runs/`` (and the store's anchor of the ledger); never runs a notebook.
"""
