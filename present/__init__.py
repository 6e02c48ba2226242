"""Presentation of plans: text (`text` blocks; `plan_text` for plans, schedules and checks;
`job_text` for validation results and jobs), figures (`figures`, matplotlib, loaded only
when a figure is drawn) and the HTML report page (`report`). Imports `planner` only; the CLI and
the API both use it."""
