"""``GET /plot/{series_id}``: the model drawn over its training data and the points it
scored since, as PNG or SVG."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from anomaly_api.api.deps import RegistryDep, SeriesIdPath, SettingsDep, VersionDep
from anomaly_api.api.schemas import ErrorResponse
from anomaly_api.detectors.series import Series
from anomaly_api.errors import InvalidInput
from anomaly_api.registry import ModelRegistry
from anomaly_api.registry.history import scored_points
from anomaly_api.storage.chunks import incident_of
from anomaly_api.timestamps import parse_timestamp

router = APIRouter(tags=["plot"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "PNG or SVG."},
    404: {"model": ErrorResponse, "description": "Unknown series or version."},
    422: {"model": ErrorResponse, "description": "Bad series id, version, or no stored points."},
}


HISTORY_POINTS = 200_000
"""Scored points a plot reads at most (the newest of the range; drawn reduced)."""


def _period_text(detector: Any) -> str | None:
    """The seasonal period the model chose (seasonal detectors, or those built on one)."""
    for model in (detector, getattr(detector, "seasonal_", None)):
        period = getattr(model, "period_", None)
        if isinstance(period, int | float):
            if period <= 0:
                return "period: none"
            days = period / 86_400
            return f"period: {days:g} day{'s' if days != 1 else ''}"
    return None


def _caption(detector: Any, params: dict[str, Any]) -> str:
    shown = ", ".join(f"{name} {value}" for name, value in params.items())
    period = _period_text(detector)
    return f"{period} · {shown}" if period else shown


def _image(
    registry: ModelRegistry,
    series_id: str,
    version: int | None,
    max_points: int,
    query: PlotQuery,
) -> Response:
    from anomaly_api.plotting import History, PlotTitle, render_plot  # matplotlib loads late

    start, end, with_history, image = query.start, query.end, query.history, query.format
    loaded, series = registry.training_data(series_id, version)
    if len(series) == 0:
        raise InvalidInput(
            f"version {loaded.record.version} of {series_id!r} was stored without training "
            "points (ANOMALY_TRAINING_POINTS_CAP=0), so there is nothing to plot",
            field="version",
        )
    low = -1 if start is None else start - 1
    high = 2**62 if end is None else end + 1
    inside = (series.timestamps > low) & (series.timestamps < high)
    if not inside.all() and inside.any():
        series = Series(series.timestamps[inside], series.values[inside])
    total = len(series)
    series = series.tail(registry.affordable_points(loaded.detector, total))
    scores = loaded.detector.fitted_scores(series)
    history = None
    if with_history:
        points = scored_points(
            registry.store, registry.streams, series_id, low, high, HISTORY_POINTS
        )
        if points:
            columns = list(zip(*points, strict=True))
            history = History(
                timestamps=np.asarray(columns[0], dtype=np.int64),
                values=np.asarray(columns[1], dtype=np.float64),
                expected=np.asarray(columns[5], dtype=np.float64),
                lower=np.array([np.nan if x is None else x for x in columns[6]], dtype=float),
                upper=np.array([np.nan if x is None else x for x in columns[7]], dtype=float),
                anomaly=np.asarray(columns[4], dtype=bool),
                opened=np.asarray([incident_of(code) == "new" for code in columns[4]]),
            )
    record = loaded.record
    title = PlotTitle(
        series_id,
        record.version,
        record.detector,
        record.params.get("threshold"),
        of_points=total if len(series) < total else None,
        caption=_caption(loaded.detector, record.params),
    )
    body = render_plot(series, scores, title, max_points, history, image)
    return Response(body, media_type="image/svg+xml" if image == "svg" else "image/png")


FromQuery = Annotated[
    str | None, Query(alias="from", description="From this time (Unix seconds or ISO-8601).")
]
ToQuery = Annotated[str | None, Query(description="Up to this time, included.")]
HistoryQuery = Annotated[
    bool, Query(description="Also draw the points scored since (GET /series/{id}/points).")
]
FormatQuery = Annotated[Literal["png", "svg"], Query(description="png or svg.")]


def _time(text: str | None, field: str) -> int | None:
    return None if text is None else parse_timestamp(text, field)


@dataclass(frozen=True, slots=True)
class PlotQuery:
    """The query parameters both plot routes take (a FastAPI dependency)."""

    start: int | None
    end: int | None
    history: bool
    format: Literal["png", "svg"]


def plot_query_params(
    from_: FromQuery = None,
    to: ToQuery = None,
    history: HistoryQuery = True,
    format: FormatQuery = "png",
) -> PlotQuery:
    return PlotQuery(_time(from_, "from"), _time(to, "to"), history, format)


PlotQueryDep = Annotated[PlotQuery, Depends(plot_query_params)]


@router.get(
    "/plot/{series_id:series}",
    response_class=Response,
    responses=_RESPONSES,
    summary="Plot a model over its training data and what it scored since",
)
def plot_series(
    series_id: SeriesIdPath,
    registry: RegistryDep,
    settings: SettingsDep,
    version: VersionDep,
    query: PlotQueryDep,
) -> Response:
    """A PNG (or SVG) of the stored training points, the points scored since through
    predicts (with the band and expected value each was answered with), the points
    outside the band and the incidents on top; the caption says the detector, its chosen
    period and parameters. `from`/`to` choose a time range. When scoring every stored
    point would cost more than the per-request work budget (`ANOMALY_MAX_REQUEST_WORK_S`),
    the latest points that fit it are drawn and the title says how many of how many."""
    return _image(registry, series_id, version, settings.plot_max_points, query)


@router.get("/plot", response_class=Response, responses=_RESPONSES, summary="Plot (query form)")
def plot_query(
    series_id: Annotated[str, Query(description="The series to plot.")],
    registry: RegistryDep,
    settings: SettingsDep,
    version: VersionDep,
    query: PlotQueryDep,
) -> Response:
    """The same as `/plot/{series_id}`, with the series id as a query parameter."""
    return _image(registry, series_id, version, settings.plot_max_points, query)
