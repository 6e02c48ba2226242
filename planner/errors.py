"""The one error type the planner raises for bad input.

Every message names the field that is wrong and the rule it broke, so that the CLI can print it
and exit 2, and the API can return it as a 422 with the field's location.
"""

from __future__ import annotations

import re

from pydantic import ValidationError


class PlanInputError(ValueError):
    """Bad input to the planner: `field` is a dotted path such as `random_ltd.min_value`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def input_error_from(exc: ValidationError, prefix: str = "") -> PlanInputError:
    """The first error of a pydantic ValidationError, as a PlanInputError with a dotted path."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    field = ".".join(p for p in (prefix, loc) if p) or "request"
    message = str(err["msg"]).removeprefix("Value error, ")
    # A model-level rule names its field first ("min_value: ..."): put it in the path.
    named = re.match(r"([a-z_]+): (.*)", message, re.DOTALL)
    if named:
        field = ".".join(p for p in (field if field != "request" else "", named[1]) if p)
        message = named[2]
    return PlanInputError(field, message)
