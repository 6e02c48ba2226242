"""The `ltd` command line: planner commands, and the service, worker and job commands."""
