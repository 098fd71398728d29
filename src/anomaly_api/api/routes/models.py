"""``POST /fit/{series_id}`` and ``POST /predict/{series_id}``: the contract's core."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from anomaly_api.api.body import documented_body, fast_body, json_body
from anomaly_api.api.columnar import FitBody, IntFitBody, timestamps_array, values_array
from anomaly_api.api.deps import ObserveDep, QuotaDep, RegistryDep, SeriesIdPath, VersionDep
from anomaly_api.api.schemas import (
    FitRequest,
    FitResponse,
    PredictRequest,
    PredictResponse,
    error_responses,
    prediction_json,
)
from anomaly_api.timestamps import parse_timestamp

router = APIRouter(tags=["models"])


@router.post(
    "/fit/{series_id:series}",
    response_model=FitResponse,
    responses=error_responses(413, 422, 429, 503),
    summary="Train a new model version for a series",
    openapi_extra=documented_body(FitRequest),
)
def fit(
    series_id: SeriesIdPath,
    body: Annotated[FitBody | FitRequest, Depends(fast_body((IntFitBody, FitBody), FitRequest))],
    registry: RegistryDep,
    quota: QuotaDep,
) -> FitResponse:
    """Fit the detector on the points and store the result as the series' next version
    (1, 2, 3 …, never reused). The version is durable once this returns 200.

    ```
    curl -X POST localhost:8000/fit/sensor_1 -H 'Content-Type: application/json' \\
      -d '{"timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240],
           "values": [10, 11, 9, 12, 15]}'
    ```
    """
    record = registry.fit(
        series_id,
        timestamps_array(body),
        values_array(body.values),
        detector=body.detector,
        params=body.detector_params(),
        retrain=body.retrain,
        quota=quota,
    )
    return FitResponse.from_record(record)


@router.post(
    "/predict/{series_id:series}",
    response_model=PredictResponse,
    responses=error_responses(404, 413, 422, 503),
    summary="Is this point anomalous?",
    openapi_extra=documented_body(PredictRequest),
)
async def predict(
    series_id: SeriesIdPath,
    body: Annotated[PredictRequest, Depends(json_body(PredictRequest))],
    registry: RegistryDep,
    version: VersionDep,
    observe: ObserveDep,
) -> Response:
    """Score one point against a version of the series' model (the latest when
    `version` is omitted) and say why: expected value, band, score and direction.

    The point is scored as the continuation of the training data and of every point the
    series observed since, and then joins that history (`observed`), unless its
    timestamp is not later than the last one observed (`not_observed` says which) or
    `?observe=false` asks for a what-if.

    ```
    curl -X POST 'localhost:8000/predict/sensor_1?version=1' \\
      -H 'Content-Type: application/json' -d '{"timestamp": "1691000240", "value": 18}'
    ```
    """
    timestamp = parse_timestamp(body.timestamp)
    # A cached, current model is scored right here (microseconds, no I/O); anything that
    # needs the store goes to a worker thread so the event loop never waits on disk.
    prediction = registry.predict_cached(series_id, body.value, timestamp, version, observe)
    if prediction is None:
        prediction = await run_in_threadpool(
            registry.predict, series_id, body.value, timestamp, version, observe
        )
    return Response(prediction_json(prediction), media_type="application/json")
