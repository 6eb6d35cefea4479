"""The Rocketry app: the workbench's scheduled jobs (built out by the scheduler issue).

Importing this module does nothing but build the app object; ``python schedules.py`` would run it.
"""

from zoneinfo import ZoneInfo

from rocketry import Rocketry

app = Rocketry(config={"timezone": ZoneInfo("America/New_York"), "cycle_sleep": 1.0})

if __name__ == "__main__":
    raise SystemExit("the scheduler is not built yet: see the scheduler issue")
