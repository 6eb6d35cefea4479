"""The pages people read: a step's HTML report, the run pages and the dashboard with its retry lines."""
