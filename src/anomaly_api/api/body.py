"""Reading JSON request bodies: any content type, orjson speed, precise errors.

FastAPI's own body handling ignores a body sent as ``application/x-www-form-urlencoded``
(what ``curl -d`` sends without ``-H 'Content-Type: application/json'``) and parses with
the standard library. Here the body is always read as JSON, first with orjson and,
only when that fails, with the standard parser, which also understands the
``NaN``/``Infinity`` tokens some clients emit, so those reach the validation that
names the offending item instead of failing as "invalid JSON". Bodies over 64 KiB are
parsed in a worker thread so the event loop keeps serving other requests.

The request models are still declared to OpenAPI (see :func:`documented_body`), so
``/docs`` shows them with their descriptions and examples.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from anomaly_api.errors import InvalidInput, TooManyValues

_PARSE_IN_THREAD_BYTES = 64 * 1024
ModelT = TypeVar("ModelT", bound=BaseModel)
StructT = TypeVar("StructT", bound=msgspec.Struct)


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply", field="body") from None


MAX_FIELD_ERRORS = 10
"""Field errors an answer lists at most; the rest are counted ("and N more")."""


class BoundedValidationError(RequestValidationError):
    """The first :data:`MAX_FIELD_ERRORS` errors of a validation, and how many there were:
    a body of a million bad values gets a small answer, built here (in the worker thread
    that parsed a large body) rather than on the event loop."""

    def __init__(self, errors: list[dict[str, Any]], total: int) -> None:
        super().__init__(errors)
        self.total = total


def first_errors(exc: ValidationError) -> BoundedValidationError:
    """``exc``'s first errors, located in the body, without echoing the input."""
    errors = exc.errors(include_url=False, include_input=False)
    kept = [{**error, "loc": ("body", *error["loc"])} for error in errors[:MAX_FIELD_ERRORS]]
    return BoundedValidationError(kept, exc.error_count())


def _validate(model: type[ModelT], raw: bytes) -> ModelT:
    data = _parse(raw)
    if not isinstance(data, dict):
        raise InvalidInput(
            f"request body must be a JSON object, got {type(data).__name__}", field="body"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise first_errors(exc) from None


def validate_array(model: type[ModelT], raw: bytes) -> ModelT:
    """``raw`` as ``model``, a root model of a JSON array; errors name the item."""
    data = _parse(raw)
    if not isinstance(data, list):
        raise InvalidInput(
            f"request body must be a JSON array, got {type(data).__name__}", field="body"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise first_errors(exc) from None


def check_value_count(raw: bytes, max_points: int) -> None:
    """Refuse (:class:`TooManyValues`) a body that may hold more than ``max_points``
    points, before it is parsed: a point takes at least two array items (a timestamp
    and a value), each item but the last of an array a comma, so more commas than twice
    the points (and some for the other fields) mean too many. Counting is one pass in C
    (~10 ms for 64 MB); bodies too short to hold that many commas are not counted."""
    limit = 2 * max_points + 10_000
    if len(raw) > limit and raw.count(b",") > limit:
        raise TooManyValues(max_points)


def max_points_of(request: Request) -> int:
    """The server's ANOMALY_MAX_POINTS_PER_REQUEST."""
    return int(request.app.state.settings.max_points_per_request)


def json_body(model: type[ModelT]) -> Callable[[Request], Awaitable[ModelT]]:
    """A dependency that reads the request body as ``model``."""

    async def read_body(request: Request) -> ModelT:
        raw = await request.body()
        if not raw.strip():
            raise InvalidInput("request body is empty: expected a JSON object", field="body")
        check_value_count(raw, max_points_of(request))
        if len(raw) > _PARSE_IN_THREAD_BYTES:
            return await run_in_threadpool(_validate, model, raw)
        return _validate(model, raw)

    return read_body


def _decode(
    structs: tuple[type[StructT], ...], model: type[ModelT], raw: bytes
) -> StructT | ModelT:
    for struct in structs:
        try:
            return msgspec.json.decode(raw, type=struct)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            # A narrower struct stops at the first item it cannot take; invalid UTF-8 in
            # a string is left to the model, which names it (a 422, not a 500).
            continue
    # The model either explains what is wrong, naming the field, or accepts what msgspec
    # cannot hold (integers beyond 64 bits): one behaviour either way.
    return _validate(model, raw)


def fast_body(
    structs: tuple[type[StructT], ...], model: type[ModelT]
) -> Callable[[Request], Awaitable[StructT | ModelT]]:
    """A dependency that decodes bodies with the first of msgspec's ``structs`` that
    takes them (the last must accept what ``model`` accepts, see
    :mod:`anomaly_api.api.columnar`); ``model`` reads the bodies msgspec refuses, and
    documents the route."""

    async def read_body(request: Request) -> StructT | ModelT:
        raw = await request.body()
        if not raw.strip():
            raise InvalidInput("request body is empty: expected a JSON object", field="body")
        check_value_count(raw, max_points_of(request))
        if len(raw) > _PARSE_IN_THREAD_BYTES:
            return await run_in_threadpool(_decode, structs, model, raw)
        return _decode(structs, model, raw)

    return read_body


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the route's JSON request body."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }
