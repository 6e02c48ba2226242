"""The CLI's side of an ltd server (`ltd submit`, `ltd check --server`): the API key it sends,
and a job followed with a progress bar (`client.server.ServerClient` does the HTTP)."""

from __future__ import annotations

import os
import sys
import time

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from client.server import ServerClient
from planner.errors import PlanInputError
from wire.jobs import JobPublic


def api_key() -> str | None:
    """The key the CLI sends to a server: LTD_API_KEY, when it is set."""
    return os.environ.get("LTD_API_KEY") or None


def server_client(url: str) -> ServerClient:
    """A client of the server at `url`, with the CLI's API key."""
    return ServerClient(url, api_key())


def follow_job(
    server: ServerClient, job_id: str, *, timeout_s: float, poll_s: float = 1.0
) -> JobPublic:
    """Poll a job until it ends, with a progress bar on the terminal."""
    deadline = time.monotonic() + timeout_s
    columns = (
        TextColumn("job {task.fields[job]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, disable=not sys.stderr.isatty(), transient=True) as bar:
        task = bar.add_task("queued", total=1.0, job=job_id)
        while True:
            job = server.get_job(job_id)
            message = f"{job.state}: {job.progress_message or ''}"
            bar.update(task, completed=job.progress, description=message[:60])
            if job.state.terminal:
                return job
            if time.monotonic() > deadline:
                raise PlanInputError(
                    "--wait-minutes",
                    f"job {job_id} still {job.state}; follow it later with its id",
                )
            time.sleep(poll_s)
