"""ltd-planner's REST service: plans, CI checks and validation jobs over a database.

`api.main.create_app()` builds the FastAPI app; `api.server.serve()` runs it (with migrations and,
optionally, a local worker). This package imports `planner`, never torch or `worker`.
"""
