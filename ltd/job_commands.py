"""`ltd serve`, `ltd migrate`, `ltd worker`, `ltd validate`, `ltd submit`: the commands that reach
the API or the worker. Each imports its package only when it runs, so that `ltd plan` works
without FastAPI or torch."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from client.base import DEFAULT_API_URL, ApiAuthError, ApiUnavailableError, http_url
from ltd.flags import add_flags, model_flags, number, read_plan_file, set_flag_values, validated
from ltd.plan_commands import PLAN_FLAGS, add_plan_flags, emit, request_from_args
from planner.document import Plan, plan_from_runs, request_from_plan
from planner.errors import PlanInputError
from planner.resolve import build_runs, resolve
from planner.validation import ValidationSettings
from present import job_text, text
from wire.jobs import JobCreate, JobPublic, JobState

# Every ValidationSettings field; names the plan flags already use get a "validation-" prefix
# (--validation-micro-batch-size, --validation-train-steps).
SETTINGS_FLAGS = model_flags(
    ValidationSettings, taken={f.option for f in PLAN_FLAGS}, collision_prefix="validation"
)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[float, str], None]]:
    """A `progress(fraction, message)` callback drawing a bar on the terminal (none when
    stderr is not one)."""
    from rich.progress import Progress

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(label, total=1.0)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, description=message[:60])

        yield progress


def cmd_serve(args: argparse.Namespace) -> int:
    from ltd.serve import serve

    serve(args.host, args.port, with_worker=args.with_worker, insecure_open=args.insecure_open)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """The one way to migrate by hand (the API also migrates at start, LTD_MIGRATE_ON_START)."""
    from api.db import migrate
    from api.settings import get_settings

    url = get_settings().database_url
    migrate(url)
    print(f"database at {url.split('@')[-1]} is at the latest schema")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.loop import run_worker
    from worker.settings import get_worker_settings

    settings = get_worker_settings()
    configured = settings.worker_token
    token = args.token or (configured.get_secret_value() if configured else None)
    if not token:
        raise PlanInputError("--token", "required (or set LTD_WORKER_TOKEN)")
    try:
        api_url = http_url(args.api) if args.api else settings.api_url
    except ValueError as exc:
        raise PlanInputError("--api", str(exc)) from None
    try:
        run_worker(
            api_url,
            token,
            worker_id=args.worker_id,
            once=args.once,
            poll_interval_s=args.poll_interval,
        )
    except ApiAuthError as exc:  # the API refused the worker itself
        if exc.status == 503:  # the service has no worker token: its configuration, not ours
            raise ApiUnavailableError(str(exc), status=503) from None
        raise PlanInputError(
            "--token", f"refused: is it the service's LTD_WORKER_TOKEN? ({exc})"
        ) from None
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from worker.profile import measure_profile

    with progress_bar("profiling") as progress:
        profile = measure_profile(args.device, args.dtype, progress=progress)
    emit(profile.model_dump_json(indent=2), args.output)
    if args.output:
        print(
            f"profile {profile.id} of {profile.device_name} written to {args.output}",
            file=sys.stderr,
        )
    return 0


def settings_from_args(args: argparse.Namespace) -> ValidationSettings:
    data: dict[str, Any] = {}
    set_flag_values(data, args, SETTINGS_FLAGS)
    return validated(ValidationSettings, data, prefix="settings")


def plan_from_args(args: argparse.Namespace) -> Plan:
    if args.plan:
        return read_plan_file(args.plan, "--plan")
    return plan_from_runs(build_runs(resolve(request_from_args(args))))


def cmd_validate(args: argparse.Namespace) -> int:
    from worker.distributed import rank
    from worker.settings import get_worker_settings
    from worker.validate import run_validation

    settings = settings_from_args(args)
    plan = plan_from_args(args)
    with progress_bar("validating") as progress:
        cache = get_worker_settings().profile_cache_dir
        result = run_validation(plan, settings, progress=progress, profile_cache=cache)
    if rank() != 0:
        return 0  # under torchrun every rank agrees on the result; rank 0 prints it
    if args.format == "json":
        text = result.model_dump_json(indent=2)
    else:
        text = job_text.render_validation(plan, result, args.format)
    emit(text, args.output)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from ltd.remote import follow_job, server_client
    from ltd.settings import get_cli_settings

    settings = settings_from_args(args)
    if args.plan_id:
        body = JobCreate(plan_id=args.plan_id, settings=settings)
    else:
        request = request_from_plan(plan_from_args(args)) if args.plan else request_from_args(args)
        body = JobCreate(plan_request=request, settings=settings)
    with server_client(args.server or get_cli_settings().api_url) as server:
        job = server.submit_job(body)
        if args.no_wait:
            print(job.id)
            return 0
        job = follow_job(server, job.id, timeout_s=args.wait_minutes * 60)
        plan = server.get_plan(job.plan_id)
    print(job_outcome(job, plan, args.format))
    return 0 if job.state == JobState.SUCCEEDED else 1


def job_outcome(job: JobPublic, plan: Plan, fmt: str) -> str:
    """`ltd submit`'s last word: the job's end, its measurements, the calibrated projection."""
    if fmt == "json":
        document = {"job": job.model_dump(mode="json"), "plan": plan.model_dump(mode="json")}
        return json.dumps(document, indent=2)
    head = f"job {job.id} {job.state}"
    if job.state != JobState.SUCCEEDED or job.result is None:
        return f"{head}: {job.error or 'no result'}"
    parts = [head, job_text.render_validation(plan, job.result, fmt)]
    if plan.calibrated:
        title = plan.calibrated.label
        rows = job_text.calibrated_rows(plan)
        parts.append(
            f"**{title}**\n\n{text.markdown_table(job_text.CAL_HEADERS, rows)}"
            if fmt == "markdown"
            else text.rich_table(title, job_text.CAL_HEADERS, rows)
        )
    return "\n".join(parts)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the REST service (SQLite by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--with-worker", action="store_true", help="also run a local worker")
    p.add_argument(
        "--insecure-open",
        action="store_true",
        help="listen beyond loopback without LTD_API_KEYS: anyone who reaches the port can read "
        "and cancel every job (refused without this flag)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="bring the database (LTD_DATABASE_URL) to the schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("worker", help="claim validation jobs from an API and run them")
    p.add_argument(
        "--api",
        default=None,
        help=f"the API's URL (env LTD_API_URL; default {DEFAULT_API_URL})",
    )
    p.add_argument("--token", default=None, help="worker token (env LTD_WORKER_TOKEN)")
    p.add_argument("--worker-id", default=None)
    p.add_argument("--once", action="store_true", help="run at most one job, then exit")
    p.add_argument("--poll-interval", type=number, default=2.0, help="seconds between claims")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("profile", help="measure this device for the step-time model")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    p.add_argument("--output", "-o", metavar="FILE", help="write the profile JSON to FILE")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("validate", help="measure a plan's saving on this machine")
    add_plan_flags(p, default_format="markdown")
    p.add_argument("--plan", metavar="FILE", help="a plan JSON (ltd plan --format json)")
    add_flags(p, SETTINGS_FLAGS)
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("submit", help="submit a validation job to a server and follow it")
    add_plan_flags(p, default_format="markdown")
    p.add_argument("--plan", metavar="FILE", help="a plan JSON (ltd plan --format json)")
    p.add_argument("--plan-id", help="a plan already stored on the server")
    p.add_argument(
        "--server",
        default=None,
        help=f"the API's URL (env LTD_API_URL; default {DEFAULT_API_URL}; API key from env "
        "LTD_API_KEY)",
    )
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")
    p.add_argument("--wait-minutes", type=number, default=120.0, help="give up following after")
    add_flags(p, SETTINGS_FLAGS)
    p.set_defaults(func=cmd_submit)
