"""POST bodies: read strictly, parsed once, and stated in the OpenAPI document.

A route takes its body from a dependency, `JsonBody(Model)`, never as a FastAPI body parameter:
FastAPI validates a body parameter laxly (`true` as the integer 1, `"5"` as the number 5), so a
strict check beside it parsed every body twice. Here the bytes are validated once, in pydantic's
strict JSON mode, as the OpenAPI schema reads them. Only a body that strict mode refuses is read
again: to accept an integral float (60.0) for an integer, as JSON Schema does, or to say where
the JSON breaks. Refusals are FastAPI's own: 422s located under `body` (an empty body, a content
type that is not JSON, invalid JSON), a 400 for bytes that are not text or nest past Python's
limit.

FastAPI no longer sees these bodies, so each route states its own (`JsonBody.openapi`, its
`openapi_extra`): required, `application/json`, the model's validation-mode JSON schema with the
models it contains under `$defs`. `document_bodies`, in the app's OpenAPI hook, moves those
`$defs` into `components/schemas` where FastAPI keeps every other schema: the document reads as
if FastAPI had stated the bodies itself (a model whose validation and serialization schemas
differ is named `-Input` and `-Output`, as FastAPI names it), with the 422 that validation
answers.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.constants import REF_PREFIX, REF_TEMPLATE
from fastapi.openapi.utils import (
    validation_error_definition,
    validation_error_response_definition,
)
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

M = TypeVar("M", bound=BaseModel)


def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule for a JSON body: `application/json` or `application/*+json`."""
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _refused(error_type: str, msg: str, loc: tuple[str | int, ...] = ("body",)) -> Exception:
    return RequestValidationError([{"type": error_type, "loc": loc, "msg": msg, "input": None}])


async def read_json(request: Request) -> bytes:
    """The body's bytes, unparsed; refused (422) when it is empty or not declared JSON."""
    body = await request.body()
    if not body:
        raise _refused("missing", "Field required")
    if not _is_json(request.headers.get("content-type")):
        raise _refused(
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )
    return body


def _integral(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_json(model: type[M], body: bytes) -> M:
    """`body` validated as `model` in pydantic's strict JSON mode: `true` is not the integer 1,
    nor `"5"` the number 5; as in JSON Schema, 60.0 is an integer. Refusals are 422s located
    under `body` (FastAPI's shape), or a 400 for bytes that do not read as JSON text."""
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError:
        pass  # read again below: integral floats, or the error to name
    try:
        data = json.loads(body, parse_float=_integral)
        text = json.dumps(data)
    except json.JSONDecodeError as exc:
        raise _refused("json_invalid", "JSON decode error", ("body", exc.pos)) from None
    except (ValueError, RecursionError):  # not UTF-8/16/32 text, or nested past Python's limit
        raise HTTPException(400, "There was an error parsing the body") from None
    try:
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


class JsonBody(Generic[M]):
    """A POST body of type `model`: as a route dependency, the request's body parsed as `model`
    (`read_json`, `parse_json`); `openapi`, the route's `openapi_extra` that states it, with
    `examples` (OpenAPI's named examples) when given."""

    def __init__(self, model: type[M], *, examples: dict[str, Any] | None = None) -> None:
        self.model = model
        refs, top = models_json_schema([(model, "validation")], ref_template=REF_TEMPLATE)
        schema = {**refs[(model, "validation")], "$defs": top["$defs"]}
        content: dict[str, Any] = {"schema": schema}
        if examples is not None:
            content["examples"] = examples
        self.openapi = {"requestBody": {"content": {"application/json": content}, "required": True}}

    def parse(self, body: bytes) -> M:
        return parse_json(self.model, body)

    async def __call__(self, request: Request) -> M:
        return parse_json(self.model, await read_json(request))


def _renamed_refs(node: Any, renames: dict[str, str]) -> Any:
    """`node` (a JSON document) with every `$ref` to a renamed component pointed at its new name."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            name = ref.removeprefix(REF_PREFIX)
            node = {**node, "$ref": REF_PREFIX + renames.get(name, name)}
        return {key: _renamed_refs(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed_refs(item, renames) for item in node]
    return node


def _refs(node: Any) -> Iterator[str]:
    """The component names `node` refers to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref.removeprefix(REF_PREFIX)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _clashes(definitions: dict[str, Any], components: dict[str, Any]) -> set[str]:
    """Names that the new `definitions` and the existing `components` both use for different
    schemas: differing text, or a reference to a name that clashes."""
    clashes = {n for n, d in definitions.items() if n in components and components[n] != d}
    grown = True
    while grown:
        more = {
            n
            for n, d in definitions.items()
            if n in components and n not in clashes and not clashes.isdisjoint(_refs(d))
        }
        clashes |= more
        grown = bool(more)
    return clashes


VALIDATION_ERROR = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}},
}


def _stated_bodies(schema: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(operation, body schema) of every operation whose JSON body a route stated with
    `JsonBody.openapi` (a schema that carries its `$defs`)."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and "$defs" in body.get("schema", {}):
                yield operation, body["schema"]


def document_bodies(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the `$defs` of the bodies routes state (`JsonBody.openapi`)
    moved into `components/schemas`, named as FastAPI names them: a name that FastAPI already
    gave to a different (serialization-mode) schema becomes `-Output` there and `-Input` here.
    Each such operation answers 422 when validation refuses its body."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    stated = list(_stated_bodies(schema))
    definitions: dict[str, Any] = {}
    for _, body in stated:
        definitions.update(body.pop("$defs"))
    inputs = {name: f"{name}-Input" for name in _clashes(definitions, components)}
    for operation, body in stated:
        body.update(_renamed_refs(body, inputs))
        operation["responses"].setdefault("422", VALIDATION_ERROR)
    if inputs:  # FastAPI's schemas of those names are the serialization-mode ones
        outputs = {name: f"{name}-Output" for name in inputs}
        components.update({outputs[name]: components.pop(name) for name in inputs})
        schema.update(_renamed_refs(schema, outputs))
        components = schema["components"]["schemas"]
    for name, definition in definitions.items():
        components.setdefault(inputs.get(name, name), _renamed_refs(definition, inputs))
    components.setdefault("ValidationError", validation_error_definition)
    components.setdefault("HTTPValidationError", validation_error_response_definition)
    schema["components"]["schemas"] = dict(sorted(components.items()))
    return schema
