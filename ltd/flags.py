"""Command-line flags derived from the pydantic models, and reading the files flags name.

A request field becomes a flag of the same name with dashes (`train_tokens` -> `--train-tokens`);
fields of nested sections are flattened (`random_ltd.min_value` -> `--min-value`,
`hardware.gpu` -> `--gpu`). The field's annotation picks the parser (integers take token
spellings such as 300B, booleans are switches, literals are choices) and its description is the
help. So a new field of `PlanRequest` or `ValidationSettings` is a new flag with no edit here.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from planner.document import Plan
from planner.errors import PlanInputError, input_error_from

M = TypeVar("M", bound=BaseModel)

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_COUNT = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)([kmbgt]?)", re.IGNORECASE)
MAX_COUNT_DIGITS = 30  # no count a user means has more; larger is a typo or an attack


def count(text: str) -> int:
    """An integer count, parsed exactly: '300000000000', '300e9', '300B', '8.2B', '1.5T',
    '2M', '4_096' or '4,096'. A spelling that denotes no whole number is refused."""
    s = text.strip().replace("_", "").replace(",", "")
    m = _COUNT.fullmatch(s)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (e.g. 300e9, 300B)")
    with localcontext() as ctx:
        ctx.prec = 2 * MAX_COUNT_DIGITS
        try:
            value = Decimal(m[1])
        except InvalidOperation:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value and value.adjusted() > MAX_COUNT_DIGITS:
            raise argparse.ArgumentTypeError(f"{text!r} is too large")
        value *= _SUFFIX[m[2].lower()]
        if value != value.to_integral_value():
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


def id_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None


@dataclass(frozen=True)
class Flag:
    """One flag: where its value goes in the model's JSON, and how argparse reads it."""

    path: tuple[str, ...]
    option: str
    parse: Callable[[str], Any] | None  # None: a switch
    choices: tuple[str, ...] | None
    help: str | None

    @property
    def dest(self) -> str:
        return "_".join(self.path)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _parser(annotation: Any) -> tuple[Callable[[str], Any] | None, tuple[str, ...] | None]:
    if annotation is bool:
        return None, None
    if get_origin(annotation) is Literal:
        return str, tuple(str(a) for a in get_args(annotation))
    if get_origin(annotation) in (tuple, list):
        return id_list, None
    return {int: count, float: number}.get(annotation, str), None


def model_flags(
    model: type[BaseModel],
    *,
    skip: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
    taken: set[str] | None = None,
    collision_prefix: str = "",
    _path: tuple[str, ...] = (),
) -> list[Flag]:
    """The flags of `model`'s fields in declaration order; nested models are flattened. A flag
    whose name is `taken` already gets `collision_prefix` (default: its top-level section's
    name); `rename` maps dotted paths to option names kept for compatibility."""
    rename = rename or {}
    taken = set() if taken is None else taken
    flags: list[Flag] = []
    for name, field in model.model_fields.items():
        path = (*_path, name)
        if ".".join(path) in skip:
            continue
        annotation = _without_none(field.annotation)
        if _is_model(annotation):
            flags += model_flags(
                annotation,
                skip=skip,
                rename=rename,
                taken=taken,
                collision_prefix=collision_prefix,
                _path=path,
            )
            continue
        option = rename.get(".".join(path), "--" + name.replace("_", "-"))
        if option in taken:  # e.g. curriculum.schedule_type -> --curriculum-schedule-type
            prefix = collision_prefix or path[0].replace("_", "-")
            option = f"--{prefix}-{name.replace('_', '-')}"
        taken.add(option)
        parse, choices = _parser(annotation)
        flags.append(Flag(path, option, parse, choices, field.description))
    return flags


def add_flags(parser: argparse.ArgumentParser, flags: Iterable[Flag]) -> None:
    for f in flags:
        if f.parse is None:  # --x / --no-x; unset leaves the field's default
            parser.add_argument(
                f.option, dest=f.dest, action=argparse.BooleanOptionalAction, default=None,
                help=f.help,
            )  # fmt: skip
        else:
            metavars: dict[Callable[[str], Any], str] = {count: "N", number: "X", id_list: "N,N"}
            metavar = metavars.get(f.parse)
            parser.add_argument(
                f.option,
                dest=f.dest,
                type=f.parse,
                choices=f.choices,
                help=f.help,
                metavar=metavar,
            )


def set_flag_values(body: dict[str, Any], args: argparse.Namespace, flags: Iterable[Flag]) -> None:
    """Put every flag the user gave into `body` (a model's JSON), at its path."""
    for f in flags:
        value = getattr(args, f.dest, None)
        if value is None:
            continue
        node = body
        for key in f.path[:-1]:
            node = node.setdefault(key, {})
        node[f.path[-1]] = value


def validated(model: type[M], data: Any, *, prefix: str = "") -> M:
    """`model` validated from `data`; pydantic's first error as a PlanInputError (exit 2)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise input_error_from(exc, prefix=prefix) from None


def read_json(path: str, flag: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PlanInputError(flag, f"no such file {path!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanInputError(flag, f"cannot read {path!r} as JSON: {exc}") from None


def read_plan_file(path: str, flag: str) -> Plan:
    """A plan document from a file: `ltd plan --format json`, or `ltd check --format json`
    (whose `plan` it takes)."""
    raw = read_json(path, flag)
    document = raw.get("plan", raw) if isinstance(raw, dict) else raw
    return validated(Plan, document, prefix=flag)
