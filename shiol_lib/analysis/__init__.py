"""The analysis: pure functions of draws frames.

Features, model, scoring, weights, tickets, backtest, evaluation (beside the exact baseline), drift
signals; ``research/`` holds the sweeps (the compute seam, the tasks, synthetic histories).
No I/O: it imports only the domain.
"""
