"""``POST /anomalydetector/{version}/timeseries/{entire|last|changepoint}/detect``: Azure
Anomaly Detector's univariate operations (``../shared/AZURE_COMPAT.md``), answered by
:mod:`anomaly_api.azure`. Paths with a prefix, ``//`` or ``changePoint`` reach here through
:mod:`.surface`. A bad request is answered 400 with Azure's flat ``{"code", "message"}``
and ``x-ms-error-code``; ``v1.0`` answers carry no ``severity``, as Azure's did not."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from anomaly_api.azure import model
from anomaly_api.azure.errors import AzureRequestError
from anomaly_api.azure.request import parse_json

router = APIRouter(tags=["azure"])
_ANSWERS = {"entire": model.entire, "last": model.last, "changepoint": model.changepoint}


class AzureError(BaseModel):
    """Azure's flat error body (also in the ``x-ms-error-code`` header)."""

    code: str = Field(examples=["InvalidSeries"])
    message: str = Field(examples=["The 'series' field must have at least 12 points."])


class AzureGatewayErrorBody(BaseModel):
    code: str = Field(examples=["404"])
    message: str = Field(examples=["Resource not found"])


class AzureGatewayError(BaseModel):
    """What the Cognitive Services gateway answered for keys, throttling and unknown
    routes: ``{"error": {"code": "401", "message": ...}}``."""

    error: AzureGatewayErrorBody


class AzureEntireAnswer(BaseModel):
    """Entire-series detection, one entry per point sent (``severity`` from v1.1)."""

    period: int
    expectedValues: list[float]  # noqa: N815 (Azure's names)
    upperMargins: list[float]  # noqa: N815
    lowerMargins: list[float]  # noqa: N815
    isAnomaly: list[bool]  # noqa: N815
    isNegativeAnomaly: list[bool]  # noqa: N815
    isPositiveAnomaly: list[bool]  # noqa: N815
    severity: list[float] | None = None


class AzureLastAnswer(BaseModel):
    """Last-point detection (``severity`` from v1.1)."""

    period: int
    suggestedWindow: int  # noqa: N815
    expectedValue: float  # noqa: N815
    upperMargin: float  # noqa: N815
    lowerMargin: float  # noqa: N815
    isAnomaly: bool  # noqa: N815
    isNegativeAnomaly: bool  # noqa: N815
    isPositiveAnomaly: bool  # noqa: N815
    severity: float | None = None


class AzureChangePointAnswer(BaseModel):
    """Change-point detection, one entry per point sent."""

    period: int
    isChangePoint: list[bool]  # noqa: N815
    confidenceScores: list[float]  # noqa: N815


def answer(version: str, operation: str, raw: bytes) -> bytes:
    """The JSON answer of ``operation`` to the request body ``raw``."""
    result = _ANSWERS[operation](parse_json(raw, operation))
    if version == "v1.0":
        result.pop("severity", None)
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


@router.post(
    "/anomalydetector/{version}/timeseries/{operation}/detect",
    summary="Azure Anomaly Detector: entire, last-point or change-point detection",
    response_model=AzureEntireAnswer | AzureLastAnswer | AzureChangePointAnswer,
    responses={
        400: {"model": AzureError, "description": "Azure's error codes."},
        404: {"model": AzureGatewayError, "description": "Unknown version or operation."},
    },
)
async def detect(
    request: Request,
    version: Annotated[
        Literal["v1.0", "v1.1", "v1.1-preview", "v1.1-preview.1"], Path(description="API version.")
    ],
    operation: Annotated[
        Literal["entire", "last", "changepoint"],
        Path(description="The operation (``changePoint`` is accepted too)."),
    ],
) -> Response:
    """Azure's univariate detection, for clients moving from Azure Anomaly Detector:
    `{"series": [{"timestamp": "2018-03-01T00:00:00Z", "value": 32858923}, ...],
    "granularity": "daily"}`. The answer's fields are Azure's, by operation (see
    `docs/azure.md` for what each option does here)."""
    raw = await request.body()
    return Response(
        await run_in_threadpool(answer, version, operation, raw), media_type="application/json"
    )


async def azure_error(request: Request, exc: Exception) -> JSONResponse:
    """An :class:`AzureRequestError` as Azure answered it."""
    assert isinstance(exc, AzureRequestError)
    return JSONResponse(
        {"code": exc.code, "message": exc.message},
        status_code=400,
        headers={"x-ms-error-code": exc.code},
    )
