"""``GET /series/{series_id}/points``: what the service scored for a series on the live
path, point by point, for a time range (:mod:`anomaly_api.registry.history`)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from anomaly_api.api.deps import RegistryDep, SeriesIdPath
from anomaly_api.api.schemas import error_responses
from anomaly_api.errors import SeriesNotFound
from anomaly_api.registry import ModelRegistry
from anomaly_api.registry.history import scored_points
from anomaly_api.series_ids import check_series_id
from anomaly_api.storage.base import StreamPoint
from anomaly_api.storage.chunks import incident_of
from anomaly_api.timestamps import parse_timestamp

router = APIRouter(prefix="/series", tags=["series"])

MAX_POINTS_PAGE = 10_000
COLUMNS = (
    "timestamp",
    "value",
    "model_version",
    "score",
    "anomaly",
    "incident",
    "expected",
    "lower",
    "upper",
)
_END_OF_TIME = 2**62


class ScoredPoint(BaseModel):
    timestamp: int = Field(description="Unix seconds.")
    value: float
    model_version: str = Field(description="The version that scored the point.")
    score: float
    anomaly: bool
    incident: Literal["new", "ongoing"] | None = Field(
        description="As the predict answered: the point opened an incident (`new`), belonged "
        "to an open one (`ongoing`), or is not anomalous (null; also for anomalous points "
        "scored before markers were kept)."
    )
    expected: float
    lower: float | None = Field(description="The band's lower edge (null: side not watched).")
    upper: float | None = Field(description="The band's upper edge (null: side not watched).")


class PointsPage(BaseModel):
    # A real answer (?limit=1&anomalies_only=true), shown by /docs.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"series_id": "web-latency",
                 "points": [
                     {"timestamp": 1764630000, "value": 94.161, "model_version": "1",
                      "score": 0.9878906008705136, "anomaly": True, "incident": "new",
                      "expected": 59.222, "lower": 55.353725, "upper": 63.090275000000005}
                 ],
                 "next_after": 1764630000}
            ]
        }
    )  # fmt: skip

    series_id: str
    points: list[ScoredPoint]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null: this is the last one."
    )


def _rows(points: list[StreamPoint]) -> list[dict[str, object]]:
    return [
        {
            "timestamp": t,
            "value": value,
            "model_version": str(version),
            "score": score,
            "anomaly": anomaly != 0,
            "incident": incident_of(anomaly),
            "expected": expected,
            "lower": lower,
            "upper": upper,
        }
        for t, value, version, score, anomaly, expected, lower, upper in points
    ]


def _page(
    registry: ModelRegistry,
    series_id: str,
    after: int,
    before: int,
    limit: int,
    anomalies_only: bool,
) -> list[StreamPoint]:
    check_series_id(series_id)
    if registry.store.latest_version(series_id) is None:
        raise SeriesNotFound(series_id)
    return scored_points(
        registry.store, registry.streams, series_id, after, before, limit, anomalies_only
    )


@router.get(
    "/{series_id}/points",
    response_model=PointsPage,
    responses={
        **error_responses(404, 422),
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv."},
    },
    summary="The points a series was scored on, with what was answered",
)
async def points(
    series_id: SeriesIdPath,
    registry: RegistryDep,
    from_: Annotated[
        str | None,
        Query(alias="from", description="From this time on (Unix seconds or ISO-8601)."),
    ] = None,
    to: Annotated[
        str | None, Query(description="Up to this time, included (Unix seconds or ISO-8601).")
    ] = None,
    after: Annotated[
        int | None, Query(description="Only points after this timestamp (a page's next_after).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS_PAGE, description="Points per page.")] = 1000,
    anomalies_only: Annotated[bool, Query(description="Only the anomalous points.")] = False,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv.")] = "json",
) -> Response:
    """Each point the series observed through `POST /predict` (and batches), oldest first:
    its value, the version that scored it, the score, the band and whether it was an
    anomaly: "which points of my series were anomalous last night?" is
    `?from=2026-12-04T18:00:00Z&to=2026-12-05T06:00:00Z&anomalies_only=true`. Pages of up
    to `limit` points; follow `next_after` (CSV: the `X-Next-After` header). Kept: the
    newest `ANOMALY_STREAM_HISTORY_POINTS` points per series."""
    lower = -1 if from_ is None else parse_timestamp(from_, "from") - 1
    if after is not None:
        lower = max(lower, after)
    upper = _END_OF_TIME if to is None else parse_timestamp(to, "to") + 1
    found = await run_in_threadpool(_page, registry, series_id, lower, upper, limit, anomalies_only)
    next_after = found[-1][0] if len(found) == limit else None
    rows = _rows(found)
    if format == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        headers = {} if next_after is None else {"X-Next-After": str(next_after)}
        return Response(text.getvalue(), media_type="text/csv", headers=headers)
    body = {"series_id": series_id, "points": rows, "next_after": next_after}
    return Response(orjson.dumps(body), media_type="application/json")


@router.delete("/{series_id}/points", include_in_schema=False)
async def points_not_deletable(series_id: SeriesIdPath) -> Response:
    """405, not a delete of a series named "{series_id}/points" (which the catch-all
    ``DELETE /series/{series_id}`` would read it as): points go with their series."""
    return Response(
        orjson.dumps({"detail": "points cannot be deleted on their own: DELETE /series/{id}"}),
        status_code=405,
        media_type="application/json",
        headers={"Allow": "GET"},
    )
