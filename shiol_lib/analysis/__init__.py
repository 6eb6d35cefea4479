"""The analysis: pure functions of draws frames.

Features, model, scoring, weights, tickets, backtest, evaluation, drift signals; ``research/`` holds the
sweeps (the compute seam, the tasks, synthetic histories).
No I/O: it imports only the domain.
"""
