"""Domain errors to HTTP responses: one table, one place.

Every class in :mod:`anomaly_api.errors` has a row (a test checks that none is
missing); the most specific row along the class's MRO wins. Bodies are always
``{"detail": "<sentence>"}``, plus ``errors`` (field and message) for validation.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from anomaly_api import errors
from anomaly_api.api.body import MAX_FIELD_ERRORS
from anomaly_api.azure.errors import AzureRequestError

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.AnomalyApiError], int] = {
    errors.AnomalyApiError: 500,
    errors.InvalidInput: 422,
    errors.InvalidSeriesId: 422,
    errors.InvalidParameter: 422,
    errors.PayloadTooLarge: 413,
    errors.BodyTooLarge: 413,
    errors.NotFound: 404,
    errors.SeriesNotFound: 404,
    errors.VersionNotFound: 404,
    errors.StoreUnavailable: 503,
    errors.StreamBusy: 503,
    errors.TooMuchWork: 413,
    errors.TooManyValues: 413,
    errors.Overloaded: 503,
    errors.QuotaExceeded: 429,
    AzureRequestError: 400,
}


RETRY_AFTER_S = "1"
"""Sent with every 503: the store is re-tried every half second, so a client that waits a
second will usually find it back (or the answer just as quickly again)."""


def status_for(error: errors.AnomalyApiError) -> int:
    """The status code of the most specific mapped class of ``error``."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_response(status: int, detail: str, **extra: Any) -> JSONResponse:
    """The one shape of every error body.

    Messages quote what the client sent, which may hold lone UTF-16 surrogates (valid in
    JSON escapes, not in UTF-8); they are shown escaped rather than failing to encode.
    """
    # Cut long strings first: a message may quote megabytes of what was sent.
    bounded = _shortened({"detail": detail, **extra})
    body = json.loads(json.dumps(bounded, ensure_ascii=True, default=str))
    return JSONResponse(_printable(body), status_code=status)


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"{value[:MAX_TEXT]}... ({len(value) - MAX_TEXT} more characters)"
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shortened(item) for item in value[:MAX_FIELD_ERRORS]]
    return value


MAX_TEXT = 1000
"""Characters of any one string in an error body (messages quote what was sent)."""


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "values", 3)`` -> ``values[3]``; ``("query", "limit")`` -> ``limit``."""
    where = {"body", "query", "path", "header", "cookie"}
    parts = [str(part) for part in (loc[1:] if loc and loc[0] in where else loc)]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return (
            f"request body is not valid JSON ({reason})"
            if reason
            else "request body is not valid JSON"
        )
    if loc == ("body",) and kind == "missing":
        return "request body is empty: expected a JSON object"
    if kind in {"model_attributes_type", "dict_type"} and loc == ("body",):
        return "request body must be a JSON object"
    return f"{_field(loc)}: {error.get('msg', 'invalid')}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors_seen = exc.errors()
    total = getattr(exc, "total", len(errors_seen))
    problems = [
        {"field": _field(tuple(e.get("loc", ()))), "message": _message(e)}
        for e in itertools.islice(errors_seen, MAX_FIELD_ERRORS)
    ]
    detail = "; ".join(problem["message"] for problem in problems[:5])
    if total > 5:
        detail += f"; and {total - 5} more"
    return error_response(422, detail, errors=problems)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.AnomalyApiError)
    status = status_for(exc)
    if status >= 500:
        logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
    extra = {}
    field = getattr(exc, "field", None)
    if field:
        extra["errors"] = [{"field": field, "message": exc.public}]
    response = error_response(status, exc.public, **extra)
    if status in (429, 503):
        retry_after = getattr(exc, "retry_after_s", None)
        response.headers["Retry-After"] = str(retry_after) if retry_after else RETRY_AFTER_S
    return response


# nginx's code for "the client closed the request": nobody reads the answer, but the
# metrics count it under this status rather than as a server error.
CLIENT_CLOSED_REQUEST = 499


async def _client_gone(request: Request, exc: Exception) -> Response:
    logger.info("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(errors.AnomalyApiError, _domain_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)
