"""`ltd plan`, `ltd schedule`, `ltd check`, `ltd models`: the commands that need only `planner`
(and `present` to print), so that a planner-only install runs them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from ltd.flags import (
    add_flags,
    count,
    model_flags,
    number,
    read_json,
    read_plan_file,
    set_flag_values,
    validated,
)
from planner.check import CheckLimits, check_plan
from planner.document import plan_from_runs, request_from_plan
from planner.errors import PlanInputError
from planner.gpus import GPUS
from planner.inverse import InverseRequest, solve
from planner.presets import PRESETS
from planner.recipes import RECIPES, recipe
from planner.request import PlanRequest
from planner.resolve import build_runs, resolve
from present import plan_text, text
from wire.plans import CheckCreate

MAX_SCHEDULE_ROWS = 5_000_000
FORMATS = ("table", "json", "markdown", "csv")

# Every PlanRequest field but the two that name files; `lr.style` keeps its first name.
PLAN_FLAGS = model_flags(
    PlanRequest,
    skip={"model", "deepspeed_config"},
    rename={"lr.style": "--lr-style", "random_ltd.enabled": "--random-ltd"},
)
LIMIT_FLAGS = model_flags(CheckLimits)


def add_plan_flags(p: argparse.ArgumentParser, *, default_format: str = "table") -> None:
    p.add_argument("--model", help="preset name (ltd models) or a config.json / shape JSON file")
    p.add_argument("--deepspeed-config", metavar="FILE", help="a whole DeepSpeed JSON config")
    p.add_argument("--request", metavar="FILE", help="a plan request JSON; flags override it")
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="start from the authors' data-efficiency recipe (CL + random-LTD); flags override",
    )
    add_flags(p, PLAN_FLAGS)
    p.add_argument("--format", choices=FORMATS, default=default_format)


def request_from_args(args: argparse.Namespace) -> PlanRequest:
    body: dict[str, Any] = read_json(args.request, "--request") if args.request else {}
    if getattr(args, "recipe", None):
        body = {**recipe(args.recipe), **body}
    if not isinstance(body, dict):
        raise PlanInputError("--request", "must hold a JSON object")
    if args.model:
        is_file = args.model.endswith(".json") or os.path.sep in args.model
        body["model"] = read_json(args.model, "--model") if is_file else args.model
    if args.deepspeed_config:
        body["deepspeed_config"] = read_json(args.deepspeed_config, "--deepspeed-config")
    set_flag_values(body, args, PLAN_FLAGS)
    profile = body.get("hardware", {}).get("device_profile")
    if isinstance(profile, str) and (profile.endswith(".json") or os.path.sep in profile):
        body["hardware"]["device_profile"] = read_json(profile, "--device-profile")
    if "model" not in body:
        raise PlanInputError("model", "required: --model PRESET|config.json (see `ltd models`)")
    return validated(PlanRequest, body)


def emit(text: str, output: str | None = None) -> None:
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_plan(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    if args.target_saving is not None:
        inverse = InverseRequest(
            target_saving=args.target_saving, metric=args.target_metric, solve_for=args.solve_for
        )
        result = solve(req, inverse)
        if args.format == "json":
            emit(result.model_dump_json(indent=2), args.output)
        else:
            text = result.message + "\n"
            if result.plan is not None:
                text += plan_text.render_plan(result.plan, args.format)
            emit(text, args.output)
        return 0 if result.reachable else 1
    runs = build_runs(resolve(req))
    p = plan_from_runs(runs)
    emit(plan_text.render_plan(p, args.format), args.output)
    if args.export_deepspeed:
        Path(args.export_deepspeed).write_text(p.deepspeed_config.model_dump_json(indent=2) + "\n")
        print(f"DeepSpeed config keys written to {args.export_deepspeed}", file=sys.stderr)
    if args.plot:
        from present.figures import plot_plan  # matplotlib only when asked for

        plot_plan(p, runs, args.plot)
        print(f"figures written to {args.plot}", file=sys.stderr)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    runs = build_runs(resolve(req))
    if args.every < 1:
        raise PlanInputError("--every", "must be at least 1")
    if args.format in ("table", "markdown") and args.every == 1 and not args.all_steps:
        steps = np.array([s for s, _ in runs.ltd.change_points()], dtype=np.int64)
    else:
        n = runs.ltd.num_steps
        if n // args.every > MAX_SCHEDULE_ROWS:
            raise PlanInputError(
                "--every",
                f"{n:,} steps would print over {MAX_SCHEDULE_ROWS:,} rows; "
                f"use --every {n // MAX_SCHEDULE_ROWS + 1} or more",
            )
        steps = np.arange(0, n, args.every, dtype=np.int64)
    emit(
        plan_text.render_schedule(plan_text.schedule_columns(runs, steps), args.format), args.output
    )
    return 0


def read_limits_file(path: str) -> dict[str, Any]:
    """Limits kept in the user's repo: JSON, or TOML (a [limits] table or top-level keys)."""
    if path.endswith(".toml"):
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise PlanInputError("--limits", f"no such file {path!r}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PlanInputError("--limits", f"cannot read {path!r} as TOML: {exc}") from None
        return dict(data.get("limits", data))
    data = read_json(path, "--limits")
    if not isinstance(data, dict):
        raise PlanInputError("--limits", "must hold a JSON object")
    return dict(data.get("limits", data))


def limits_from_args(args: argparse.Namespace) -> CheckLimits:
    data = read_limits_file(args.limits) if args.limits else {}
    set_flag_values(data, args, LIMIT_FLAGS)
    return validated(CheckLimits, data, prefix="limits")


def cmd_check(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    limits = limits_from_args(args)
    previous = read_plan_file(args.compare, "--compare") if args.compare else None
    if args.server:
        from ltd.remote import server_client  # httpx only when a server is asked for

        with server_client(args.server) as server:
            # An earlier plan is stored there first (by its request, so its id is the same).
            compared = server.create_plan(request_from_plan(previous)) if previous else None
            body = CheckCreate(
                request=req, limits=limits, compare_plan_id=compared.id if compared else None
            )
            result = server.check(body)
    else:
        result = check_plan(plan_from_runs(build_runs(resolve(req))), limits, previous)
    emit(plan_text.render_check(result, args.format), args.output)
    if args.summary:
        with open(args.summary, "a") as f:  # e.g. $GITHUB_STEP_SUMMARY
            f.write(plan_text.render_check(result, "markdown"))
    return 0 if result.passed else 1


def cmd_models(args: argparse.Namespace) -> int:
    rows = [
        (name, m.arch, m.num_layers, m.hidden_size, m.num_heads, m.seq_len,
         text.human(m.num_params))
        for name, m in PRESETS.items()
    ]  # fmt: skip
    headers = ("preset", "arch", "layers", "hidden", "heads", "seq_len", "params")
    if args.format == "json":
        emit(json.dumps({n: m.model_dump() for n, m in PRESETS.items()}, indent=2))
    elif args.format == "csv":
        emit(text.csv_text(headers, rows))
    elif args.format == "markdown":
        emit(text.markdown_table(headers, [[str(c) for c in r] for r in rows]))
    else:
        emit(text.rich_table("model presets", headers, [[str(c) for c in r] for r in rows]))
    gpus = ", ".join(f"{k} ({v.peak_tflops:g} TFLOP/s)" for k, v in GPUS.items())
    if args.format in ("table", "markdown"):
        emit(f"GPU presets (dense bf16 peaks): {gpus}")
        emit(f"recipes (--recipe, CL + random-LTD): {', '.join(RECIPES)}")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("plan", help="baseline and random-LTD run side by side")
    add_plan_flags(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the plan's figures")
    p.add_argument(
        "--export-deepspeed",
        metavar="FILE.json",
        help="write the plan's DeepSpeed keys (train_batch_size, random_ltd)",
    )
    p.add_argument("--target-saving", type=number, help="inverse planning: fraction to save")
    p.add_argument("--target-metric", choices=("layer_tokens", "flops"), default="layer_tokens")
    p.add_argument("--solve-for", choices=("require_steps", "min_value"), default="require_steps")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schedule", help="the random-LTD run step by step (csv: every step)")
    add_plan_flags(p, default_format="csv")
    p.add_argument("--every", type=count, default=1, help="every k-th step")
    p.add_argument("--all-steps", action="store_true", help="table/markdown: every step")
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("check", help="budget gate for CI: exit 1 when a limit is broken")
    add_plan_flags(p)
    add_flags(p, LIMIT_FLAGS)
    p.add_argument("--limits", metavar="FILE", help="limits file (JSON or TOML)")
    p.add_argument(
        "--compare",
        metavar="OLD_PLAN.json",
        help="an earlier plan (ltd plan --format json) to compare against; see --max-growth",
    )
    p.add_argument(
        "--server",
        metavar="URL",
        help="run the check on an ltd server (API key from env LTD_API_KEY)",
    )
    p.add_argument("--summary", metavar="FILE", help="append a markdown summary to FILE")
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("models", help="list model and GPU presets")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=cmd_models)
