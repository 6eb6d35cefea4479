"""When jobs run: cron slots, the pure planner, the scheduler engine, alerts, the health API, the service.

Never imports the analysis or :mod:`shiol_lib.steps`; jobs run in child processes of their own.
"""
