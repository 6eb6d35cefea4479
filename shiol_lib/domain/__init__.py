"""The domain: game matrices and prizes, the draw calendar, the draw record and frame, history checks.

The bottom layer: it imports nothing of the workbench but :mod:`shiol_lib.errors`.
"""
