"""The ltd API's HTTP client base (`client.base.ApiClient`): the CLI and the worker both talk to
the server through it. Imports `planner` (for the typed documents) and httpx, nothing else of
this project."""
