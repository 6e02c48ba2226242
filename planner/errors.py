"""The one error type the planner raises for bad input.

Every message names the field that is wrong and the rule it broke, so that the CLI can print it
and exit 2, and the API can return it as a 422 with the field's location.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError


class PlanInputError(ValueError):
    """Bad input to the planner: `field` is a dotted path such as `random_ltd.min_value`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# The tags of the planner's tagged unions (`planner.hf_config.ModelSpec`,
# `planner.hardware.ProfileRef`): pydantic puts the chosen form's tag in an error's location,
# where it names no field, so locations leave them out.
UNION_TAGS = frozenset(
    {"preset name", "model shape", "config.json", "profile id", "device profile"}
)


def field_loc(loc: Sequence[str | int]) -> list[str | int]:
    """An error's location without union tags: the path of the field in the JSON."""
    return [part for part in loc if part not in UNION_TAGS]


def input_error_from(exc: ValidationError, prefix: str = "") -> PlanInputError:
    """The first error of a pydantic ValidationError, as a PlanInputError with a dotted path."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in field_loc(err["loc"]))
    field = ".".join(p for p in (prefix, loc) if p) or "request"
    named, message = split_named(str(err["msg"]))
    if named:
        field = ".".join(p for p in (field if field != "request" else "", named) if p)
    return PlanInputError(field, message)


_NAMED = re.compile(r"([a-z_]+): (.*)", re.DOTALL)


def split_named(message: str) -> tuple[str | None, str]:
    """A pydantic message as `(field, rule)`: a model-level rule names its field first
    (the planner's convention, "min_value: must not exceed max_value"), which belongs in the
    error's location rather than its text. `(None, message)` when it names none."""
    message = message.removeprefix("Value error, ")
    named = _NAMED.match(message)
    return (named[1], named[2]) if named else (None, message)
