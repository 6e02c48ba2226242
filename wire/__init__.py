"""The wire contract: every request, response and worker-protocol body that crosses HTTP, as
pydantic models over `planner`'s documents, with each field's limit stated once (`wire.limits`).

`api` validates with these models and answers with them; `client` sends and parses them, so
the worker and the CLI read fields, never dicts. Imports `planner` and pydantic only: no
FastAPI, no HTTP library, no database (tests/test_layering.py guards it).

Names follow `<Thing>Create`, `<Thing>Public`, `<Things>Public(data, count)`; plan documents are
`planner.Plan`, plan requests `planner.PlanRequest`.
"""
