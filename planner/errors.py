"""The one error type the planner raises for bad input.

Every message names the field that is wrong and the rule it broke, so that the CLI can print it
and exit 2, and the API can return it as a 422 with the field's location.
"""

from __future__ import annotations


class PlanInputError(ValueError):
    """Bad input to the planner: `field` is a dotted path such as `random_ltd.min_value`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
