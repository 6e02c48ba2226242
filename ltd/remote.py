"""The CLI's side of an ltd server (`ltd submit`, `ltd check --server`): a client with the
CLI's API key (`ltd.settings`), and a job followed with a progress bar (`client.server.ServerClient`
does the HTTP)."""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from client.base import http_url
from client.server import ServerClient
from ltd.settings import api_key
from planner.errors import PlanInputError
from wire.jobs import JobPublic


def server_client(url: str, flag: str = "--server") -> ServerClient:
    """A client of the server at `url` (given by `flag`), with the CLI's API key."""
    try:
        return ServerClient(http_url(url), api_key())
    except ValueError as exc:
        raise PlanInputError(flag, str(exc)) from None


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
