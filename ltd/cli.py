"""`ltd`: the one command-line entry point.

Flags are the plan request's snake_case fields with dashes (`--train-tokens`); nested fields are
flattened (`--min-value` for `random_ltd.min_value`, `--gpu` for `hardware.gpu`). Exit codes: 0 ok,
1 a check failed, 2 bad input (the message names the field).

The API and the worker are imported only by the commands that need them, so that a planner-only
install runs `ltd plan` without FastAPI or torch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ltd import formats
from planner.check import CheckLimits, check_plan
from planner.errors import PlanInputError, input_error_from
from planner.hardware import GPU_PRESETS
from planner.inverse import InverseRequest, solve
from planner.models import PRESETS
from planner.plan import Plan, PlanRequest, build_runs, plan_from_runs, resolve

MAX_SCHEDULE_ROWS = 5_000_000
FORMATS = ("table", "json", "markdown", "csv")
_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


class InputError(Exception):
    """Bad command-line input: exit 2 with `field: message`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def count(text: str) -> int:
    """An integer count: '300000000000', '300e9', '300B', '1.5T', '2M' or '4_096'."""
    s = text.strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*([kmbgt]?)", s, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (e.g. 300e9, 300B)")
    value = float(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1)
    if not math.isfinite(value) or not value.is_integer() or abs(value) > 1e30:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def id_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ids") from None


# (flag, request path, type, help). The path is where the value goes in the PlanRequest JSON.
PLAN_FLAGS: list[tuple[str, tuple[str, ...], Any, str]] = [
    ("--train-batch-size", ("train_batch_size",), count, "global batch size G (sequences)"),
    ("--train-tokens", ("train_tokens",), count, "baseline's tokens (300e9, 300B)"),
    ("--train-steps", ("train_steps",), count, "baseline's optimizer steps"),
    ("--ltd-train-tokens", ("ltd_train_tokens",), count, "random-LTD budget, effective tokens"),
    ("--ltd-train-steps", ("ltd_train_steps",), count, "random-LTD run's steps"),
    ("--min-value", ("random_ltd", "min_value"), count, "reserved length at step 0"),
    ("--max-value", ("random_ltd", "max_value"), count, "reserved length at the end (S)"),
    (
        "--schedule-type",
        ("random_ltd", "schedule_type"),
        str,
        "fixed_linear | fixed_root | constant",
    ),
    ("--require-steps", ("random_ltd", "require_steps"), count, "steps to reach max_value"),
    ("--seq-per-step", ("random_ltd", "seq_per_step"), count, "length granularity"),
    ("--root-degree", ("random_ltd", "root_degree"), count, "fixed_root's degree"),
    ("--layer-ids", ("random_ltd", "layer_ids"), id_list, "dropping layers, e.g. 1,2,3"),
    ("--gpu", ("hardware", "gpu"), str, f"GPU preset: {', '.join(GPU_PRESETS)}"),
    ("--num-gpus", ("hardware", "num_gpus"), count, "GPUs"),
    ("--peak-tflops", ("hardware", "peak_tflops"), number, "dense peak TFLOP/s per GPU"),
    ("--mfu", ("hardware", "mfu"), number, "model FLOPs utilisation, 0-1 (default 0.4)"),
    ("--price-per-gpu-hour", ("hardware", "price_per_gpu_hour"), number, "USD per GPU-hour"),
    ("--micro-batch-size", ("hardware", "micro_batch_size"), count, "for the memory estimate"),
    ("--peak-lr", ("lr", "peak_lr"), number, "LayerToken LR schedule: peak LR"),
    ("--min-lr", ("lr", "min_lr"), number, "LR after decay"),
    ("--warmup-tokens", ("lr", "warmup_tokens"), count, "LR warmup, effective tokens"),
    ("--decay-tokens", ("lr", "decay_tokens"), count, "LR decay ends at, effective tokens"),
    ("--lr-style", ("lr", "style"), str, "cosine | linear"),
]


def add_plan_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="preset name (ltd models) or a config.json / shape JSON file")
    p.add_argument("--deepspeed-config", metavar="FILE", help="a whole DeepSpeed JSON config")
    p.add_argument("--request", metavar="FILE", help="a plan request JSON; flags override it")
    for flag, path, typ, help_ in PLAN_FLAGS:
        metavar = {count: "N", number: "X", id_list: "IDS"}.get(typ, "NAME")
        p.add_argument(flag, type=typ, help=help_, dest="_".join(path), metavar=metavar)
    p.add_argument(
        "--ltd-equal-compute",
        action="store_true",
        help="random-LTD run stops at the baseline's LayerTokens",
    )
    p.add_argument("--activation-recompute", action="store_true", help="full recompute")
    p.add_argument("--format", choices=FORMATS, default="table")


def read_json(path: str, field: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(field, f"no such file {path!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(field, f"cannot read {path!r} as JSON: {exc}") from None


def request_from_args(args: argparse.Namespace) -> PlanRequest:
    body: dict[str, Any] = read_json(args.request, "--request") if args.request else {}
    if not isinstance(body, dict):
        raise InputError("--request", "must hold a JSON object")
    if args.model:
        is_file = args.model.endswith(".json") or os.path.sep in args.model
        body["model"] = read_json(args.model, "--model") if is_file else args.model
    if args.deepspeed_config:
        body["deepspeed_config"] = read_json(args.deepspeed_config, "--deepspeed-config")
    for _, path, _, _ in PLAN_FLAGS:
        value = getattr(args, "_".join(path))
        if value is not None:
            node = body
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    if args.ltd_equal_compute:
        body["ltd_equal_compute"] = True
    if args.activation_recompute:
        body.setdefault("hardware", {})["activation_recompute"] = True
    if "model" not in body:
        raise InputError("model", "required: --model PRESET|config.json (see `ltd models`)")
    try:
        return PlanRequest.model_validate(body)
    except ValidationError as exc:
        raise input_error_from(exc) from None


def emit(text: str, output: str | None = None) -> None:
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# Commands ----------------------------------------------------------------------------------


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
                text += formats.render_plan(result.plan, args.format)
            emit(text, args.output)
        return 0 if result.reachable else 1
    runs = build_runs(resolve(req))
    p = plan_from_runs(runs)
    emit(formats.render_plan(p, args.format), args.output)
    if args.export_deepspeed:
        Path(args.export_deepspeed).write_text(json.dumps(p.deepspeed_config, indent=2) + "\n")
        print(f"DeepSpeed config keys written to {args.export_deepspeed}", file=sys.stderr)
    if args.plot:
        from ltd.plots import plot_plan  # matplotlib only when asked for

        plot_plan(p, runs, args.plot)
        print(f"figures written to {args.plot}", file=sys.stderr)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    runs = build_runs(resolve(req))
    if args.every < 1:
        raise InputError("--every", "must be at least 1")
    if args.format in ("table", "markdown") and args.every == 1 and not args.all_steps:
        steps = np.array([s for s, _ in runs.ltd.change_points()], dtype=np.int64)
    else:
        n = runs.ltd.num_steps
        if n // args.every > MAX_SCHEDULE_ROWS:
            raise InputError(
                "--every",
                f"{n:,} steps would print over {MAX_SCHEDULE_ROWS:,} rows; "
                f"use --every {n // MAX_SCHEDULE_ROWS + 1} or more",
            )
        steps = np.arange(0, n, args.every, dtype=np.int64)
    emit(formats.render_schedule(formats.schedule_columns(runs, steps), args.format), args.output)
    return 0


def limits_from_args(args: argparse.Namespace) -> CheckLimits:
    data: dict[str, Any] = {}
    if args.limits:
        data = read_limits_file(args.limits)
    for name in CheckLimits.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    try:
        return CheckLimits.model_validate(data)
    except ValidationError as exc:
        raise input_error_from(exc, prefix="limits") from None


def read_limits_file(path: str) -> dict[str, Any]:
    """Limits kept in the user's repo: JSON, or TOML (a [limits] table or top-level keys)."""
    if path.endswith(".toml"):
        import tomllib

        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError("--limits", f"no such file {path!r}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError("--limits", f"cannot read {path!r} as TOML: {exc}") from None
        return dict(data.get("limits", data))
    data = read_json(path, "--limits")
    if not isinstance(data, dict):
        raise InputError("--limits", "must hold a JSON object")
    return dict(data.get("limits", data))


def cmd_check(args: argparse.Namespace) -> int:
    req = request_from_args(args)
    limits = limits_from_args(args)
    previous = None
    if args.compare:
        raw = read_json(args.compare, "--compare")
        try:
            previous = Plan.model_validate(raw.get("plan", raw) if isinstance(raw, dict) else raw)
        except ValidationError as exc:
            raise input_error_from(exc, prefix="--compare") from None
    if args.server:
        from ltd.remote import remote_check

        result = remote_check(args.server, req, limits, previous)
    else:
        result = check_plan(plan_from_runs(build_runs(resolve(req))), limits, previous)
    emit(formats.render_check(result, args.format), args.output)
    if args.summary:
        with open(args.summary, "a") as f:  # e.g. $GITHUB_STEP_SUMMARY
            f.write(formats.render_check(result, "markdown"))
    return 0 if result.passed else 1


def cmd_models(args: argparse.Namespace) -> int:
    rows = [
        (
            name,
            m.arch,
            m.num_layers,
            m.hidden_size,
            m.num_heads,
            m.seq_len,
            formats.human(m.num_params),
        )
        for name, m in PRESETS.items()
    ]
    headers = ("preset", "arch", "layers", "hidden", "heads", "seq_len", "params")
    if args.format == "json":
        emit(
            json.dumps(
                {n: {**m.model_dump(), "num_params": m.num_params} for n, m in PRESETS.items()},
                indent=2,
            )
        )
    elif args.format == "csv":
        emit(formats.csv_text(headers, rows))
    elif args.format == "markdown":
        emit(formats.markdown_table(headers, [[str(c) for c in r] for r in rows]))
    else:
        emit(formats.rich_table("model presets", headers, [[str(c) for c in r] for r in rows]))
    gpus = ", ".join(f"{k} ({v[0]:g} TFLOP/s)" for k, v in GPU_PRESETS.items())
    if args.format in ("table", "markdown"):
        emit(f"GPU presets (dense bf16 peaks): {gpus}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltd", description="Plan, budget and verify random-LTD training runs."
    )
    sub = parser.add_subparsers(dest="command", required=True)

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
    add_plan_flags(p)
    p.set_defaults(format="csv")
    p.add_argument("--every", type=count, default=1, help="every k-th step")
    p.add_argument("--all-steps", action="store_true", help="table/markdown: every step")
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("check", help="budget gate for CI: exit 1 when a limit is broken")
    add_plan_flags(p)
    for name, field in CheckLimits.model_fields.items():
        p.add_argument(
            "--" + name.replace("_", "-"), type=number, help=field.description, metavar="X"
        )
    p.add_argument("--limits", metavar="FILE", help="limits file (JSON or TOML)")
    p.add_argument(
        "--compare",
        metavar="OLD_PLAN.json",
        help="an earlier plan (ltd plan --format json) to compare against; see --max-growth",
    )
    p.add_argument("--server", metavar="URL", help="run the check on an ltd server")
    p.add_argument("--summary", metavar="FILE", help="append a markdown summary to FILE")
    p.add_argument("--output", "-o", metavar="FILE")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("models", help="list model and GPU presets")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=cmd_models)

    from ltd import services

    services.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, PlanInputError) as exc:
        print(f"ltd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"ltd {args.command}: error: {input_error_from(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
