"""``GET /plot/{series_id}``: the model drawn over its training data, as PNG."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from anomaly_api.api.deps import RegistryDep, SeriesIdPath, SettingsDep, VersionDep
from anomaly_api.api.schemas import ErrorResponse
from anomaly_api.errors import InvalidInput
from anomaly_api.registry import ModelRegistry

router = APIRouter(tags=["plot"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "A PNG image."},
    404: {"model": ErrorResponse, "description": "Unknown series or version."},
    422: {"model": ErrorResponse, "description": "Bad series id, version, or no stored points."},
}


def _png(registry: ModelRegistry, series_id: str, version: int | None, max_points: int) -> Response:
    from anomaly_api.plotting import PlotTitle, render_plot  # matplotlib loads on first plot

    loaded, series = registry.training_data(series_id, version)
    if len(series) == 0:
        raise InvalidInput(
            f"version {loaded.record.version} of {series_id!r} was stored without training "
            "points (ANOMALY_TRAINING_POINTS_CAP=0), so there is nothing to plot",
            field="version",
        )
    total = len(series)
    series = series.tail(registry.affordable_points(loaded.detector, total))
    scores = loaded.detector.fitted_scores(series)
    record = loaded.record
    title = PlotTitle(
        series_id,
        record.version,
        record.detector,
        record.params.get("threshold"),
        of_points=total if len(series) < total else None,
    )
    return Response(render_plot(series, scores, title, max_points), media_type="image/png")


@router.get(
    "/plot/{series_id:series}",
    response_class=Response,
    responses=_RESPONSES,
    summary="Plot a model over its training data",
)
def plot_series(
    series_id: SeriesIdPath, registry: RegistryDep, settings: SettingsDep, version: VersionDep
) -> Response:
    """A PNG of the stored training points, the expected value, the normal band and the
    training points outside it, titled with series, version, detector and threshold.
    When scoring every stored point would cost more than the per-request work budget
    (`ANOMALY_MAX_REQUEST_WORK_S`), the latest points that fit it are drawn and the
    title says how many of how many."""
    return _png(registry, series_id, version, settings.plot_max_points)


@router.get("/plot", response_class=Response, responses=_RESPONSES, summary="Plot (query form)")
def plot_query(
    series_id: Annotated[str, Query(description="The series to plot.")],
    registry: RegistryDep,
    settings: SettingsDep,
    version: VersionDep,
) -> Response:
    """The same as `/plot/{series_id}`, with the series id as a query parameter."""
    return _png(registry, series_id, version, settings.plot_max_points)
