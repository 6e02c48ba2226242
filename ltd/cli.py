"""`ltd`: the one command-line entry point, the top floor (the only package that imports all).

Flags are the request's snake_case fields with dashes (`--train-tokens`), derived from the
pydantic models (`ltd.flags`); nested fields are flattened (`--min-value` for
`random_ltd.min_value`, `--gpu` for `hardware.gpu`). Exit codes: 0 ok, 1 a check failed,
2 bad input (the message names the field).

Commands: `ltd.plan_commands` (plan, schedule, check, models: the planner alone) and
`ltd.job_commands` (serve, migrate, worker, validate, submit: the API, the worker, a server).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from client.base import ApiError, ApiInputError, ApiRefusedError
from ltd import job_commands, plan_commands
from planner.errors import PlanInputError, input_error_from


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltd", description="Plan, budget and verify random-LTD training runs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plan_commands.add_commands(sub)
    job_commands.add_commands(sub)
    return parser


def _server_error(exc: ApiError) -> PlanInputError:
    """What the server answered, as bad input naming what to fix."""
    if isinstance(exc, ApiInputError):
        return PlanInputError("request", f"the server refused it: {exc.detail}")
    if isinstance(exc, ApiRefusedError) and exc.status == 404:
        return PlanInputError("id", f"not found: {exc}")
    return PlanInputError("--server", str(exc))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PlanInputError as exc:
        print(f"ltd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a document the CLI read (a server's answer, a file)
        print(f"ltd {args.command}: error: {input_error_from(exc)}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"ltd {args.command}: error: {_server_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
