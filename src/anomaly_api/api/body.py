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
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from anomaly_api.errors import BodyTooLarge, InvalidInput, TooManyValues

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


SMALL_BODY_BYTES = 64 * 1024
"""The largest body of a route that takes one small object (a point, a key)."""


def json_body(
    model: type[ModelT], max_bytes: int = SMALL_BODY_BYTES
) -> Callable[[Request], Awaitable[ModelT]]:
    """A dependency that reads the request body as ``model``: a small object, at most
    ``max_bytes`` (413 beyond, before it is parsed)."""

    async def read_body(request: Request) -> ModelT:
        raw = await request.body()
        if not raw.strip():
            raise InvalidInput("request body is empty: expected a JSON object", field="body")
        if len(raw) > max_bytes:
            raise BodyTooLarge(len(raw), max_bytes)
        check_value_count(raw, max_points_of(request))
        if len(raw) > _PARSE_IN_THREAD_BYTES:
            return await run_in_threadpool(_validate, model, raw)
        return _validate(model, raw)

    return read_body


BIG_BODY_BYTES = 1 << 20
"""Bodies larger than this are decoded by msgspec alone, a field at a time, and a fault
is answered from msgspec's own error (the first one, naming the field and item): no
second parse by the standard library and pydantic. Parsing holds the GIL for the whole
call, so a 14 MB body of a million keys, parsed whole, kept the event loop (every cached
predict) waiting 0.3 s per parse, and its pydantic fallback as long again."""
SMALL_FIELD_BYTES = 64 * 1024
"""The most any field of a large body but its point arrays may take."""
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


DECODE_ERRORS = (msgspec.MsgspecError, UnicodeDecodeError, RecursionError)


def msgspec_error(exc: Exception, *base: str | int) -> Exception:
    """msgspec's error (``Expected `float`, got `str` - at `$[3]```) as this API's 422,
    located in the body under ``base``."""
    where = ".".join(str(part) for part in base) or "body"
    if isinstance(exc, UnicodeDecodeError):
        return InvalidInput(f"{where}: a string is not valid UTF-8", field=where)
    if isinstance(exc, RecursionError):
        return InvalidInput(f"{where} is nested too deeply", field=where)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return InvalidInput(f"request body is not valid JSON: {exc}", field="body")
    message, found, where = str(exc).rpartition(" - at `")
    if not found:
        message, where = str(exc), "$`"
    path: list[str | int] = [
        name if index == "" else int(index) for name, index in _PATH_PART.findall(where[1:-1])
    ]
    error = {"loc": ("body", *base, *path), "msg": message, "type": "value_error"}
    return BoundedValidationError([error], 1)


def _decode_big(structs: tuple[type[StructT], ...], raw: bytes) -> StructT:
    """A large body as the last of ``structs`` (the first when its ``timestamps`` are all
    integers): the top level scanned into raw fields (about a millisecond per megabyte),
    then each field decoded on its own, so no single call holds the GIL for long."""
    try:
        fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:
        raise InvalidInput("request body must be a JSON object", field="body") from None
    except DECODE_ERRORS as exc:
        raise msgspec_error(exc) from None
    general = structs[-1]
    decoded: dict[str, Any] = {}
    chosen = general
    for info in msgspec.structs.fields(general):
        if info.encode_name not in fields:
            continue
        text = fields[info.encode_name]
        if info.name not in ("timestamps", "values") and len(text) > SMALL_FIELD_BYTES:
            raise InvalidInput(
                f"{info.name} takes {len(text):,} bytes of the body; at most "
                f"{SMALL_FIELD_BYTES // 1024} KiB",
                field=info.name,
            )
        kinds = [info.type]
        if info.name == "timestamps" and len(structs) > 1:
            kinds.insert(0, msgspec.structs.fields(structs[0])[0].type)  # integers first
        for position, kind in enumerate(kinds):
            try:
                decoded[info.name] = msgspec.json.decode(text, type=kind)
                if position == 0 and len(kinds) > 1:
                    chosen = structs[0]
                break
            except DECODE_ERRORS as exc:
                if position == len(kinds) - 1:
                    raise msgspec_error(exc, info.name) from None
    try:
        return chosen(**decoded)
    except TypeError:
        missing = [
            info.name
            for info in msgspec.structs.fields(general)
            if info.name not in decoded and info.required
        ]
        error = {"loc": ("body", missing[0]), "msg": "Field required", "type": "missing"}
        raise BoundedValidationError([error], len(missing)) from None


def _decode(
    structs: tuple[type[StructT], ...], model: type[ModelT], raw: bytes
) -> StructT | ModelT:
    if len(raw) > BIG_BODY_BYTES:
        return _decode_big(structs, raw)
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
