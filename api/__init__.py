"""ltd-planner's REST service: plans, CI checks and validation jobs over a database.

`api.main.create_app()` builds the FastAPI app; `api.server.serve()` runs it (migrations first;
`ltd serve --with-worker` adds a local worker from the CLI's side). This package imports
`planner`, never torch, `worker` or the CLI, nor runs them.
"""
