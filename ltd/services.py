"""`ltd serve`, `ltd worker`, `ltd validate`: the commands that need the API or the worker.

Each imports its package only when it runs, so `ltd plan` works without FastAPI or torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pydantic import ValidationError

DEFAULT_API_URL = "http://127.0.0.1:8000"


def add_commands(sub: Any) -> None:
    from ltd.cli import add_plan_flags, number

    p = sub.add_parser("serve", help="run the REST service (SQLite by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--with-worker", action="store_true", help="also run a local worker")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="bring the database (LTD_DATABASE_URL) to the schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("worker", help="claim validation jobs from an API and run them")
    p.add_argument(
        "--api",
        default=os.environ.get("LTD_API_URL", DEFAULT_API_URL),
        help="the API's URL (env LTD_API_URL)",
    )
    p.add_argument("--token", default=None, help="worker token (env LTD_WORKER_TOKEN)")
    p.add_argument("--worker-id", default=None)
    p.add_argument("--once", action="store_true", help="run at most one job, then exit")
    p.add_argument("--poll-interval", type=number, default=2.0, help="seconds between claims")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("validate", help="measure a plan's saving on this machine")
    add_plan_flags(p)
    p.set_defaults(format="markdown")
    p.add_argument("--plan", metavar="FILE", help="a plan JSON (ltd plan --format json)")
    add_settings_flags(p)
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("submit", help="submit a validation job to a server and follow it")
    add_plan_flags(p)
    p.set_defaults(format="markdown")
    p.add_argument("--plan", metavar="FILE", help="a plan JSON (ltd plan --format json)")
    p.add_argument("--plan-id", help="a plan already stored on the server")
    p.add_argument(
        "--server",
        default=os.environ.get("LTD_API_URL", DEFAULT_API_URL),
        help="the API's URL (env LTD_API_URL; API key from env LTD_API_KEY)",
    )
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")
    p.add_argument("--wait-minutes", type=number, default=120.0, help="give up following after")
    add_settings_flags(p)
    p.set_defaults(func=cmd_submit)


def add_settings_flags(p: argparse.ArgumentParser) -> None:
    from ltd.cli import count, id_list, number

    p.add_argument("--mode", choices=("throughput", "convergence", "both"))
    p.add_argument("--num-layers", type=count)
    p.add_argument("--validation-micro-batch-size", dest="v_micro_batch_size", type=count)
    p.add_argument("--reserved-lengths", type=id_list, help="e.g. 128,512,1024,2048")
    p.add_argument("--warmup-steps", type=count)
    p.add_argument("--measure-steps", type=count)
    p.add_argument("--validation-train-steps", dest="v_train_steps", type=count)
    p.add_argument("--dataset", help="'stdlib' or a text/token file")
    p.add_argument("--seed", type=count)
    p.add_argument("--device", choices=("auto", "cuda", "cpu"))
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"))
    p.add_argument("--max-minutes", type=number)


def cmd_serve(args: argparse.Namespace) -> int:
    from api.server import serve

    serve(args.host, args.port, with_worker=args.with_worker)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from api.db import migrate
    from api.settings import Settings

    url = Settings().database_url
    migrate(url)
    print(f"database at {url.split('@')[-1]} is at the latest schema")
    return 0


def worker_token(explicit: str | None) -> str:
    from ltd.cli import InputError

    token = explicit or os.environ.get("LTD_WORKER_TOKEN")
    if not token:
        raise InputError("--token", "required (or set LTD_WORKER_TOKEN)")
    return token


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.loop import run_worker

    run_worker(
        args.api,
        worker_token(args.token),
        worker_id=args.worker_id,
        once=args.once,
        poll_interval_s=args.poll_interval,
    )
    return 0


def settings_from_args(args: argparse.Namespace) -> Any:
    from ltd.cli import InputError
    from planner.validation import ValidationSettings

    names = {
        "mode": "mode",
        "num_layers": "num_layers",
        "v_micro_batch_size": "micro_batch_size",
        "reserved_lengths": "reserved_lengths",
        "warmup_steps": "warmup_steps",
        "measure_steps": "measure_steps",
        "v_train_steps": "train_steps",
        "dataset": "dataset",
        "seed": "seed",
        "device": "device",
        "dtype": "dtype",
        "max_minutes": "max_minutes",
    }
    data = {
        field: getattr(args, arg)
        for arg, field in names.items()
        if getattr(args, arg, None) is not None
    }
    if "reserved_lengths" in data:
        data["reserved_lengths"] = list(data["reserved_lengths"])
    try:
        return ValidationSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError("settings." + ".".join(map(str, err["loc"])), err["msg"]) from None


def load_plan(args: argparse.Namespace) -> Any:
    from ltd.cli import InputError, read_json, request_from_args
    from planner.plan import Plan, build_runs, plan_from_runs, resolve

    if args.plan:
        raw = read_json(args.plan, "--plan")
        try:
            return Plan.model_validate(raw.get("plan", raw) if isinstance(raw, dict) else raw)
        except ValidationError as exc:
            raise InputError("--plan", f"not a plan document: {exc.errors()[0]['msg']}") from None
    return plan_from_runs(build_runs(resolve(request_from_args(args))))


def cmd_validate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from ltd import formats

    settings = settings_from_args(args)
    plan = load_plan(args)
    from worker.validate import run_validation

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("validating", total=1.0)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, description=message[:60])

        result = run_validation(plan, settings, progress=progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun every rank agrees on the result; rank 0 prints it
    if args.format == "json":
        text = result.model_dump_json(indent=2)
    else:
        text = formats.render_validation(plan, result, args.format)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from ltd import formats
    from ltd.cli import request_from_args
    from ltd.remote import Client
    from planner.plan import request_from_plan

    settings = settings_from_args(args)
    client = Client(args.server)
    body: dict[str, Any] = {"settings": settings.model_dump(exclude_defaults=True)}
    if args.plan_id:
        body["plan_id"] = args.plan_id
    elif args.plan:
        request = request_from_plan(load_plan(args))
        body["plan_request"] = request.model_dump(mode="json", exclude_none=True)
    else:
        body["plan_request"] = request_from_args(args).model_dump(mode="json", exclude_none=True)
    job = client.submit_job(body)
    if args.no_wait:
        print(job["id"])
        return 0
    job = client.follow_job(job["id"], timeout_s=args.wait_minutes * 60)
    plan = client.get_plan(job["plan_id"])
    print(formats.render_job_outcome(job, plan, args.format))
    return 0 if job["state"] == "succeeded" else 1
