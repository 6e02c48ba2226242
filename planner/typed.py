"""Changed copies of the planner's models, validated like the originals.

Pydantic's `model_copy(update=...)` builds a model without running its validators, so a copy can
hold what no constructor would accept (a shape whose hidden size no longer divides by its heads).
`changed` is the one way the planner changes a model: every field validated again, the nested
models that did not change kept as they are.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from planner.errors import input_error_from

M = TypeVar("M", bound=BaseModel)


def changed(model: M, *, field: str = "", **updates: Any) -> M:
    """A copy of `model` with `updates`, validated; a value the model refuses raises
    PlanInputError naming `field` (a dotted prefix) and the field that broke a rule."""
    values = {name: getattr(model, name) for name in type(model).model_fields}
    try:
        return type(model).model_validate({**values, **updates})
    except ValidationError as exc:
        raise input_error_from(exc, prefix=field) from None
