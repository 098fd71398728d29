"""``POST /predict``: points of many series in one request, for collectors that scrape
many metrics at once. Each point is answered as a single predict of its series would be,
in the order given, or with its own error; one bad point does not fail the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import repeat
from typing import Annotated, Any

import msgspec
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, FailFast, Field, RootModel, field_validator
from starlette.concurrency import run_in_threadpool

from anomaly_api.api.asgi.workers import PASSED_ON, WorkerRouter, owner_of
from anomaly_api.api.body import (
    BIG_BODY_BYTES,
    DECODE_ERRORS,
    check_value_count,
    documented_body,
    max_points_of,
    msgspec_error,
    validate_array,
)
from anomaly_api.api.deps import ObserveDep, RegistryDep, parse_version
from anomaly_api.api.errors import status_for
from anomaly_api.api.schemas import (
    Number,
    PredictResponse,
    TimestampIn,
    error_responses,
    fits_a_float,
)
from anomaly_api.detectors.series import MAX_TIMESTAMP, MIN_TIMESTAMP
from anomaly_api.errors import AnomalyApiError, InvalidInput
from anomaly_api.registry import ModelRegistry, Prediction
from anomaly_api.registry.bulk import Columns
from anomaly_api.timestamps import parse_timestamp

router = APIRouter(tags=["models"])


class BulkPoint(BaseModel):
    """One point of one series."""

    model_config = ConfigDict(extra="forbid")

    series_id: str = Field(description="The series the point belongs to.")
    timestamp: TimestampIn = Field(description="Unix seconds (number or string) or ISO-8601.")
    value: Number = Field(description="The observation: a finite number.")
    _fits = field_validator("value")(lambda value: fits_a_float(value))
    version: str | int | None = Field(
        None, description="The version to score with (latest when omitted), as ?version= does."
    )


class BulkRequest(RootModel[Annotated[list[BulkPoint], FailFast()]]):
    """Points of any series, answered in the order given."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                [
                    {"series_id": "web-1:cpu", "timestamp": 1691000300, "value": 41.5},
                    {"series_id": "web-2:cpu", "timestamp": 1691000300, "value": 97.0},
                ]
            ]
        }
    )


class PointError(BaseModel):
    """Why one point got no answer."""

    status: int = Field(description="The status a single predict of it would have answered.")
    detail: str = Field(description="The sentence it would have answered.")


class BulkResult(PredictResponse):
    """A point's answer: a single predict's fields."""


class BulkFailure(BaseModel):
    """A point that could not be scored."""

    series_id: str | None
    timestamp: Any
    error: PointError


class BulkResponse(BaseModel):
    """One answer per point, in the order of the request."""

    count: int = Field(description="How many points the request held.")
    errors: int = Field(description="How many of them got an error instead of an answer.")
    results: list[BulkResult | BulkFailure]


class _Point(msgspec.Struct, forbid_unknown_fields=True):
    series_id: str
    timestamp: int | float | str
    value: float
    version: int | str | None = None


_DECODER = msgspec.json.Decoder(list[_Point])
Points = Sequence[_Point | BulkPoint]


async def bulk_body(request: Request) -> Points:
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("request body is empty: expected a JSON array of points", field="body")
    check_value_count(raw, max_points_of(request))
    return await run_in_threadpool(_decode, raw)


def _decode(raw: bytes) -> Points:
    """msgspec for the common case; the pydantic model explains what it refuses, unless
    the body is large: then msgspec's own error is the answer (see BIG_BODY_BYTES)."""
    try:
        return _DECODER.decode(raw)
    except DECODE_ERRORS as exc:
        if len(raw) > BIG_BODY_BYTES:
            raise msgspec_error(exc) from None
        return validate_array(BulkRequest, raw).root


@router.post(
    "/predict",
    response_model=BulkResponse,
    responses=error_responses(413, 422),
    summary="Score points of many series at once",
    openapi_extra=documented_body(BulkRequest),
)
async def predict_many(
    request: Request,
    body: Annotated[Points, Depends(bulk_body)],
    registry: RegistryDep,
    observe: ObserveDep,
) -> Response:
    """Score each point as `POST /predict/{series_id}` would, one after the other in the
    order given (points of one series are its stream, in order), and answer each with the
    same fields, or with the error a single predict of it would have got:

    ```
    curl -X POST localhost:8000/predict -H 'Content-Type: application/json' -d '[
      {"series_id": "web-1:cpu", "timestamp": 1691000300, "value": 41.5},
      {"series_id": "web-2:cpu", "timestamp": 1691000300, "value": 97.0}]'
    ```

    With several workers, each worker scores the points of the series it owns, in order
    (the request is split among them and the answers put back in place).
    """
    router: WorkerRouter | None = request.app.state._state.get("router")
    if router is None or _passed_on(request):
        results, errors = await run_in_threadpool(_results, registry, body, observe)
    else:
        results, errors = await _split(router, registry, body, observe, request)
    return Response(
        orjson.dumps({"count": len(body), "errors": errors, "results": results}),
        media_type="application/json",
    )


def _passed_on(request: Request) -> bool:
    return PASSED_ON.decode() in request.headers


async def _split(
    router: WorkerRouter,
    registry: ModelRegistry,
    points: Points,
    observe: bool,
    request: Request,
) -> tuple[list[Prediction | dict[str, Any] | None], int]:
    """Each owner's points scored by it (this worker's here, the others' passed on, all at
    once), the answers put back in the request's order."""
    groups: dict[int, list[int]] = {}
    for index, point in enumerate(points):
        groups.setdefault(owner_of(point.series_id, router.workers), []).append(index)
    results: list[Prediction | dict[str, Any] | None] = [None] * len(points)
    mine = groups.pop(router.slot, [])

    async def local() -> None:
        found, _ = await run_in_threadpool(_results, registry, [points[i] for i in mine], observe)
        for index, result in zip(mine, found, strict=True):
            results[index] = result

    async def remote(slot: int, indices: list[int]) -> None:
        body = orjson.dumps([_as_json(points[index]) for index in indices])
        headers = [(b"content-type", b"application/json")]
        try:
            status, _, answer = await router.forward(
                slot, "POST", "/predict", request.url.query.encode(), headers, body
            )
            found = orjson.loads(answer)["results"] if status == 200 else None
        except ConnectionError:
            status, found = 503, None
        for position, index in enumerate(indices):
            results[index] = (
                found[position]
                if found is not None
                else _failure(
                    points[index].series_id,
                    points[index].timestamp,
                    503,
                    "the worker that serves this series did not answer; retry shortly",
                )
            )

    await asyncio.gather(local(), *(remote(slot, indices) for slot, indices in groups.items()))
    return results, sum(1 for result in results if type(result) is dict and "error" in result)


def _as_json(point: _Point | BulkPoint) -> dict[str, Any]:
    data: dict[str, Any] = {
        "series_id": point.series_id,
        "timestamp": point.timestamp,
        "value": point.value,
    }
    if point.version is not None:
        data["version"] = point.version
    return data


def _failure(series_id: str, timestamp: Any, status: int, detail: str) -> dict[str, Any]:
    return {
        "series_id": series_id,
        "timestamp": timestamp,
        "error": {"status": status, "detail": detail},
    }


def _results(
    registry: ModelRegistry, points: Points, observe: bool
) -> tuple[list[Prediction | dict[str, Any] | None], int]:
    stamps = [point.timestamp for point in points]
    if (
        stamps
        and all(type(stamp) is int for stamp in stamps)
        and min(stamps) >= MIN_TIMESTAMP  # type: ignore[operator]
        and max(stamps) <= MAX_TIMESTAMP  # type: ignore[operator]
        and all(point.version is None for point in points)
    ):
        # Unix seconds and no versions, as collectors send: nothing to parse per point.
        found = registry.predict_many(
            Columns(
                [point.series_id for point in points],
                stamps,  # type: ignore[arg-type]
                [float(point.value) for point in points],
            ),
            observe,
        )
        prepared: list[tuple[str, int, float, int | None] | AnomalyApiError] | None = None
    else:
        prepared = [_prepared(point) for point in points]
        found = registry.predict_many(
            [item for item in prepared if not isinstance(item, AnomalyApiError)], observe
        )
    if len(found) == len(points) and all(type(answer) is Prediction for answer in found):
        return found, 0  # type: ignore[return-value]  # orjson writes the wire's fields
    answers = iter(found)
    results: list[Prediction | dict[str, Any] | None] = []
    errors = 0
    for point, item in zip(points, prepared or repeat(None), strict=False):
        answer = item if isinstance(item, AnomalyApiError) else next(answers)
        if isinstance(answer, Prediction):
            results.append(answer)
            continue
        errors += 1
        results.append(
            _failure(point.series_id, point.timestamp, status_for(answer), answer.public)
        )
    return results, errors


def _prepared(point: _Point | BulkPoint) -> tuple[str, int, float, int | None] | AnomalyApiError:
    """``(series_id, timestamp, value, version)``, or why the point cannot be scored."""
    try:
        timestamp = point.timestamp
        if type(timestamp) is not int or not MIN_TIMESTAMP <= timestamp <= MAX_TIMESTAMP:
            timestamp = parse_timestamp(timestamp)
        version = None if point.version is None else parse_version(str(point.version))
    except AnomalyApiError as exc:
        return exc
    return (point.series_id, timestamp, float(point.value), version)
