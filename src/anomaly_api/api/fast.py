"""The hot path: ``POST /predict/{series_id}`` answered in front of the framework.

A single predict is a few microseconds of arithmetic, but FastAPI's routing, dependency
injection and pydantic validation cost well over 100 µs of CPU per request, which caps
one worker at a few thousand predicts per second. This ASGI middleware sits outside the
framework (in front of the FastAPI app itself, whose own middleware costs tens of µs)
and answers the common case itself:

* the body is small, complete, and a JSON object whose ``timestamp`` and ``value`` have
  the types :class:`~anomaly_api.api.schemas.PredictRequest` accepts;
* the series id is valid, ``?version=`` is absent or a plain positive integer and
  ``?observe=`` absent or a plain boolean;
* the model and the series' live stream are in memory and current
  (:meth:`ModelRegistry.score_cached`: what :meth:`ModelRegistry.predict_cached`, the
  call the FastAPI route makes first, does before building its answer).

Everything else (bad input to explain, a model to load from the store, a store that is
down, any other route) goes to the FastAPI app unchanged, with the body already read
replayed to it. So validation, error bodies, ``/docs``, the "latest" guarantee and the
latency windows are the framework route's by construction: this module only skips work
on requests that the route would have answered with 200, and the answer's bytes are the
same (:func:`~anomaly_api.api.schemas.point_json` writes what
:func:`~anomaly_api.api.schemas.prediction_json` writes; ``tests/api/test_schemas.py``
checks it). ``tests/api/test_fast.py`` compares the two paths answer for answer. One
difference: the inference latency a predict answered here records is its whole request's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.datastructures import State

from anomaly_api import metrics
from anomaly_api.api.deps import parse_version
from anomaly_api.api.schemas import point_json
from anomaly_api.detectors.series import MAX_TIMESTAMP, MIN_TIMESTAMP
from anomaly_api.errors import AnomalyApiError
from anomaly_api.registry import ModelRegistry
from anomaly_api.telemetry import LatencyWindow
from anomaly_api.timestamps import parse_timestamp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = "/predict/"
#: The route template the predict metrics are recorded under, as the framework names it.
HANDLER = "/predict/{series_id}"
#: A predict body is ~50 bytes; anything much larger is left to the framework's checks.
MAX_FAST_BODY = 4096
MAX_REMEMBERED_QUERIES = 4096
_queries: dict[bytes, tuple[int | None, bool]] = {}
_BOOLEANS = {
    b"true": True, b"1": True, b"yes": True, b"on": True,
    b"false": False, b"0": False, b"no": False, b"off": False,
}  # fmt: skip
_HEADERS = [(b"content-type", b"application/json")]
_NO_QUERY: tuple[int | None, bool] = (None, True)


class FastPredict:
    """ASGI wrapper answering cache-hit predicts without the framework (see module)."""

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    @property
    def state(self) -> State:
        """The FastAPI app's state (its registry and settings), as on the app itself."""
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(PREFIX)
        ):
            await self.api(scope, receive, send)
            return
        started = time.perf_counter()
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body, complete = message.get("body", b""), True  # a predict: one message
        else:
            body, complete = await _read_body(receive, message)
        small = complete and len(body) <= MAX_FAST_BODY
        found = _answer(self.api.state, scope, body) if small else None
        if found is None:
            await self.api(scope, _replay(body, complete, receive), send)
            return
        answer, detector, anomaly, window = found
        headers = [*_HEADERS, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        seconds = time.perf_counter() - started
        # One duration for both: the request's, as the inference latency of a predict
        # answered here (parsing and writing it included: a few microseconds).
        window.record(seconds)
        metrics.record_cached_predict(HANDLER, detector, anomaly, seconds)


def _answer(
    state: State, scope: Scope, body: bytes
) -> tuple[bytes, str, bool, LatencyWindow] | None:
    """The 200 body for a cache-hit predict, with its detector and anomaly flag for the
    metrics and the latency window to record it in (neither done yet), or None to let
    the framework answer."""
    registry: ModelRegistry | None = state._state.get("registry")  # no __getattr__ detour
    series_id: str = scope["path"][len(PREFIX) :]
    if registry is None or "/" in series_id:
        return None
    try:
        query = scope["query_string"]
        version, observe = _query(query) if query else _NO_QUERY
        point = orjson.loads(body)
        if type(point) is not dict:
            return None
        raw_timestamp: Any = point.get("timestamp")
        value: Any = point.get("value")
        # The types PredictRequest accepts (strict: no bools, no null).
        if type(value) not in (int, float) or type(raw_timestamp) not in (int, float, str):
            return None
        timestamp = (
            raw_timestamp
            if type(raw_timestamp) is int and MIN_TIMESTAMP <= raw_timestamp <= MAX_TIMESTAMP
            else parse_timestamp(raw_timestamp)
        )
        value = float(value)
        found = registry.score_cached(series_id, value, timestamp, version, observe)
    except (AnomalyApiError, orjson.JSONDecodeError, ValueError, OverflowError):
        return None
    if found is None:
        return None
    loaded, stamp, point, why = found
    return (
        point_json(loaded, stamp, value, point, why),
        loaded.detector_name,
        point.anomaly,
        registry.inference_latency,
    )


def _query(query: bytes) -> tuple[int | None, bool]:
    """``?version=N`` and ``?observe=true|false`` in their plain forms; anything fancier
    raises for the framework to parse (and explain).

    Clients send the same few query strings over and over: answers are remembered (for
    at most :data:`MAX_REMEMBERED_QUERIES` distinct query strings).
    """
    if not query:
        return None, True
    known = _queries.get(query)
    if known is not None:
        return known
    if b"%" in query or b"+" in query:
        raise ValueError("not a plain query")
    version: int | None = None
    observe: bool | None = None
    for part in query.split(b"&"):
        name, equals, text = part.partition(b"=")
        if name == b"version" and equals and version is None:
            version = parse_version(text.decode("ascii"))
            if version is None:
                raise ValueError("latest spelled out: let the framework read it")
        elif name == b"observe" and observe is None and text.lower() in _BOOLEANS:
            observe = _BOOLEANS[text.lower()]
        else:
            raise ValueError("not a plain query")
    parsed = (version, True if observe is None else observe)
    if len(_queries) < MAX_REMEMBERED_QUERIES:
        _queries[query] = parsed
    return parsed


async def _read_body(receive: Receive, message: Message) -> tuple[bytes, bool]:
    """The request body, from its first ``message`` on, if it is complete within
    :data:`MAX_FAST_BODY` bytes; otherwise what was read so far and False."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_FAST_BODY:
            return b"".join(chunks), False
        message = await receive()


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A ``receive`` that first hands back what was already read, then the rest."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay
