"""Presentation of plans: text formats (`formats`), figures (`figures`, matplotlib, loaded only
when a figure is drawn) and the HTML report page (`report`). Imports `planner` only; the CLI and
the API both use it."""
