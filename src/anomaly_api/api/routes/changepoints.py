"""``POST /changepoints``: where a series' level or trend changes (the Chow test of
:mod:`anomaly_api.detectors.changepoint`), from this service's own API. Nothing is
stored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, FailFast, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from anomaly_api.api.body import documented_body, fast_body
from anomaly_api.api.columnar import timestamps_array, values_array
from anomaly_api.api.schemas import Number, TimestampIn, error_responses
from anomaly_api.detectors.changepoint import MIN_WINDOW, change_points
from anomaly_api.detectors.decompose import deseasonalized, detect_period
from anomaly_api.detectors.series import Series
from anomaly_api.errors import InvalidInput

router = APIRouter(tags=["detection"])


class ChangePointBody(msgspec.Struct):
    """Fast decoding of :class:`ChangePointRequest`."""

    timestamps: list[int | float | str]
    values: list[float]
    window: int = 10
    threshold: float = 0.99
    period: int | Literal["auto"] = "auto"


class IntChangePointBody(ChangePointBody):
    timestamps: list[int]  # type: ignore[assignment]


class ChangePointRequest(BaseModel):
    """An evenly spaced series in which to find changes of level or trend."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timestamps": list(range(1_691_000_000, 1_691_000_000 + 60 * 12, 60)),
                    "values": [10, 11, 9, 10, 11, 10, 20, 21, 19, 20, 21, 20],
                    "window": 3,
                    "threshold": 0.95,
                }
            ]
        }
    )

    timestamps: Annotated[list[TimestampIn], FailFast()] = Field(
        description="Unix seconds or ISO-8601, one per value; the points are taken in time "
        "order and as evenly spaced."
    )
    values: Annotated[list[Number], FailFast()] = Field(description="Finite numbers.")
    window: StrictInt = Field(
        10, ge=MIN_WINDOW, description="Points on each side of a change that must be steady."
    )
    threshold: float = Field(
        0.99,
        gt=0,
        lt=1,
        strict=True,
        description="Confidence at which a change is reported (0 to 1).",
    )
    period: Annotated[StrictInt, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="Points per seasonal cycle, removed before testing; 0: none; 'auto': "
        "found from the data.",
    )


class ChangePointAnswer(BaseModel):
    period: int = Field(description="The seasonal period removed first (0: none).")
    is_change_point: list[bool] = Field(description="Per point, in the order given.")
    confidence: list[float] = Field(description="Per point: confidence of a change there.")


def _answer(body: ChangePointBody | ChangePointRequest) -> bytes:
    if len(body.timestamps) != len(body.values):
        raise InvalidInput("timestamps and values must have the same length", field="values")
    series = Series.from_arrays(timestamps_array(body), values_array(body.values))
    order = np.argsort(timestamps_array(body), kind="stable")
    if body.window < MIN_WINDOW:
        raise InvalidInput(f"window must be at least {MIN_WINDOW}", field="window")
    if not 0 < body.threshold < 1:
        raise InvalidInput("threshold must lie between 0 and 1", field="threshold")
    values = series.values
    period = detect_period(values) if body.period == "auto" else int(body.period)
    if period < 0:
        raise InvalidInput("period must be 0 or more, or 'auto'", field="period")
    found = change_points(deseasonalized(values, period), body.window, body.threshold)
    flags = np.empty(values.size, dtype=bool)
    confidence = np.empty(values.size)
    flags[order], confidence[order] = found.is_change_point, found.confidence
    answer: dict[str, Any] = {"period": period, "is_change_point": flags, "confidence": confidence}
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


@router.post(
    "/changepoints",
    response_model=ChangePointAnswer,
    responses=error_responses(413, 422),
    summary="Find where a series' level or trend changes",
    openapi_extra=documented_body(ChangePointRequest),
)
async def changepoints(
    body: Annotated[
        ChangePointBody | ChangePointRequest,
        Depends(fast_body((IntChangePointBody, ChangePointBody), ChangePointRequest)),
    ],
) -> Response:
    """Test every point as the start of a change of level or trend (the Chow test over
    `window` points each side; `confidence` is 1 minus its p-value) and report the most
    confident point of each change at or above `threshold`. A seasonal pattern is removed
    first. Nothing is stored.

    ```
    curl -X POST localhost:8000/changepoints -H 'Content-Type: application/json' \\
      -d '{"timestamps": [1,2,3,4,5,6,7,8,9,10,11,12],
           "values": [10,11,9,10,11,10,20,21,19,20,21,20], "window": 3, "period": 0}'
    ```
    """
    return Response(await run_in_threadpool(_answer, body), media_type="application/json")
