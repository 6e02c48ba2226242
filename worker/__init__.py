"""The validation worker: random-LTD in torch, measured on this machine, reported to the API.

Entry points: `worker.validate.run_validation(plan, settings, progress)` runs a validation
locally; `worker.loop.run_worker(api_url, token)` claims and runs jobs from the API. Imports
`planner` and torch, never `api`.
"""
