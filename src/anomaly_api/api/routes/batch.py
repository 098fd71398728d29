"""``POST /predict/{series_id}/batch`` and ``POST /detect``: many points per request.

Registered before ``/predict/{series_id}``, whose id may contain anything (so that an
id with a slash gets a 422 that says so, not a 404).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from anomaly_api.api.body import documented_body, fast_body
from anomaly_api.api.columnar import (
    BatchRequest,
    BatchResponse,
    DetectRequest,
    DetectResponse,
    FitBody,
    IntFitBody,
    IntPointsBody,
    PartsResponse,
    PointsBody,
    columnar_parts,
    parse_columns,
    timestamps_array,
    values_array,
)
from anomaly_api.api.deps import ObserveDep, RegistryDep, SeriesIdPath, VersionDep
from anomaly_api.api.schemas import error_responses
from anomaly_api.errors import InvalidInput
from anomaly_api.registry import ModelRegistry

router = APIRouter(tags=["models"])


async def columns_query(
    columns: Annotated[
        str | None,
        Query(
            description="Comma-separated subset of anomaly,score,expected,lower,upper to "
            "return (all when omitted): fewer columns, smaller and faster answers.",
            examples=["anomaly,score"],
        ),
    ] = None,
) -> tuple[str, ...]:
    return parse_columns(columns)


ColumnsDep = Annotated[tuple[str, ...], Depends(columns_query)]


def _points(body: PointsBody | BatchRequest | FitBody | DetectRequest) -> tuple[Any, Any]:
    if len(body.timestamps) != len(body.values):
        raise InvalidInput(
            f"timestamps has {len(body.timestamps)} items but values has {len(body.values)}; "
            "give one timestamp per value",
            field="timestamps",
        )
    return timestamps_array(body), values_array(body.values)


@router.post(
    "/predict/{series_id:series}/batch",
    response_model=BatchResponse,
    responses=error_responses(404, 413, 422, 503),
    summary="Score many points of a series at once",
    openapi_extra=documented_body(BatchRequest),
)
async def predict_batch(
    series_id: SeriesIdPath,
    body: Annotated[
        PointsBody | BatchRequest, Depends(fast_body((IntPointsBody, PointsBody), BatchRequest))
    ],
    registry: RegistryDep,
    version: VersionDep,
    columns: ColumnsDep,
    observe: ObserveDep,
) -> Response:
    """Score every point against a version of the series' model (the latest when
    `version` is omitted), in the order given, as single predicts would one after the
    other: each point is the continuation of the training data and of every point the
    series observed before it, and joins that history unless its timestamp is not later
    than the last one observed (their indices are in `not_observed`) or
    `?observe=false` asks for a what-if. Answers with one array per field: a million
    points take about as long as parsing their JSON.

    ```
    curl -X POST 'localhost:8000/predict/sensor_1/batch?version=1' \\
      -H 'Content-Type: application/json' \\
      -d '{"timestamps": [1691000300, 1691000360], "values": [12.5, 80.0]}'
    ```
    """
    return PartsResponse(
        await run_in_threadpool(_score_batch, registry, series_id, body, version, columns, observe)
    )


def _score_batch(
    registry: ModelRegistry,
    series_id: str,
    body: PointsBody | BatchRequest,
    version: int | None,
    columns: tuple[str, ...],
    observe: bool,
) -> list[bytes]:
    timestamps, values = _points(body)
    used, scores, observed = registry.score_batch(series_id, timestamps, values, version, observe)
    return columnar_parts(
        scores,
        columns,
        series_id=series_id,
        model_version=str(used[0][1].version),
        detector=used[0][1].detector_name,
        versions=[{"from": index, "version": str(model.version)} for index, model in used],
        observe=observe,
        points_observed=int(np.count_nonzero(observed)),
        not_observed=np.flatnonzero(~observed).tolist() if observe else [],
    )


@router.post(
    "/detect",
    response_model=DetectResponse,
    responses=error_responses(413, 422),
    summary="Fit and score a whole series in one call, storing nothing",
    openapi_extra=documented_body(DetectRequest),
)
async def detect(
    body: Annotated[
        FitBody | DetectRequest, Depends(fast_body((IntFitBody, FitBody), DetectRequest))
    ],
    registry: RegistryDep,
    columns: ColumnsDep,
) -> Response:
    """Fit the detector (as `POST /fit` would, same body) on the points and say how it
    judges each of them: for backfills and one-off analysis. Nothing is stored; the
    answer has one array per field, in the order of the points given.

    ```
    curl -X POST localhost:8000/detect -H 'Content-Type: application/json' \\
      -d '{"timestamps": [1, 2, 3, 4, 5, 6],
      "values": [10, 11, 9, 12, 10, 50], "detector": "robust"}'
    ```
    """
    return PartsResponse(await run_in_threadpool(_detect, registry, body, columns))


def _detect(
    registry: ModelRegistry, body: FitBody | DetectRequest, columns: tuple[str, ...]
) -> list[bytes]:
    timestamps, values = _points(body)
    model, scores = registry.detect(timestamps, values, body.detector, body.detector_params())
    return columnar_parts(scores, columns, detector=model.name, params=model.params)
