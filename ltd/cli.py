"""`ltd`: the one command-line entry point, the top floor (the only package that imports all).

Flags are the request's snake_case fields with dashes (`--train-tokens`), derived from the
pydantic models (`ltd.flags`); nested fields are flattened (`--min-value` for
`random_ltd.min_value`, `--gpu` for `hardware.gpu`).

Exit codes (`main`):

    0  ok
    1  a check failed (`ltd check`: a limit is broken; `ltd submit`: the job did not succeed;
       `ltd plan --target-saving`: no schedule reaches the target)
    2  bad input: a flag, a file, a variable (LTD_...), or what the server refused as such
       (422, an unknown id, a refused API key or worker token); the message names what to fix
    3  the server could not be reached, timed out, or failed (5xx); the message names the URL
       and what happened

Commands: `ltd.plan_commands` (plan, schedule, check, models: the planner alone) and
`ltd.job_commands` (serve, migrate, worker, profile, validate, submit: the API, the worker, a
server).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from client.base import ApiAuthError, ApiError, ApiInputError, ApiRefusedError
from ltd import job_commands, plan_commands
from planner.errors import PlanInputError, input_error_from

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_SERVER_FAILED = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltd", description="Plan, budget and verify random-LTD training runs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plan_commands.add_commands(sub)
    job_commands.add_commands(sub)
    return parser


def _refused(exc: ApiError) -> PlanInputError | None:
    """A server's refusal as bad input naming what to fix; None when the server itself failed
    (unreachable, a timeout, a 5xx)."""
    if isinstance(exc, ApiAuthError):
        return PlanInputError("LTD_API_KEY", f"the server refused the key: {exc}")
    if isinstance(exc, ApiInputError):
        return PlanInputError("request", f"the server refused it: {exc}")
    if isinstance(exc, ApiRefusedError):
        return PlanInputError("id", f"{'not found' if exc.status == 404 else 'refused'}: {exc}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except PlanInputError as exc:
        print(f"ltd {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:  # a document the CLI read (a server's answer, a file)
        print(f"ltd {args.command}: error: {input_error_from(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ApiError as exc:
        refused = _refused(exc)
        if refused is not None:
            print(f"ltd {args.command}: error: {refused}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"ltd {args.command}: error: server failed: {exc}", file=sys.stderr)
        return EXIT_SERVER_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
