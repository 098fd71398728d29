"""``/series``: list, inspect and delete series and their versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from anomaly_api.api.deps import RegistryDep, SeriesIdPath, parse_version
from anomaly_api.api.schemas import (
    DeleteResponse,
    ErrorResponse,
    SeriesDetail,
    SeriesListItem,
    SeriesPage,
    StreamInfo,
    VersionInfo,
)
from anomaly_api.errors import InvalidInput

router = APIRouter(prefix="/series", tags=["series"])

MAX_VERSIONS_PAGE = 1000
"""Versions per page of ``GET /series/{id}``."""
MAX_VERSION = 2**63 - 1
MAX_STREAM_PAGE = 100
"""Series per page of ``GET /series?stream=true`` (each reads its recent points)."""
"""Version numbers are 64-bit integers in both stores."""

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown series or version."}
}


@router.get(
    "",
    response_model=SeriesPage,
    response_model_exclude_unset=True,  # `stream` only when asked for
    summary="List series, paginated by id",
)
def list_series(
    registry: RegistryDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Series per page.")] = 100,
    after: Annotated[
        str | None, Query(description="Start after this series id (from next_after).")
    ] = None,
    search: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=256,
            description="Only the ids holding this text (ASCII letters in either case).",
        ),
    ] = None,
    stream: Annotated[
        bool,
        Query(
            description="Add each series' stream counters (last score, anomalies and "
            "incidents of the last hour and day), as `GET /series/{id}` gives them; "
            "`limit` is then at most 100."
        ),
    ] = False,
) -> SeriesPage:
    """Series that have at least one model, ordered by id, `limit` at a time."""
    if stream and limit > MAX_STREAM_PAGE:
        raise InvalidInput(
            f"limit must be at most {MAX_STREAM_PAGE} with stream=true", field="limit"
        )
    page = registry.list_series(limit + 1, after, search)
    more = len(page) > limit
    page = page[:limit]
    items = [SeriesListItem.from_summary(item) for item in page]
    if stream:
        for item in items:
            info = registry.stream_info(item.series_id)
            item.stream = None if info is None else StreamInfo(**info)
    return SeriesPage(
        series=items,
        total=registry.count_series(),
        next_after=page[-1].series_id if more else None,
    )


def _version_number(version: str) -> int:
    number = parse_version(version)
    if number is None:
        raise InvalidInput("version must be a positive integer such as 2", field="version")
    return number


@router.get(
    "/{series_id}/versions/{version}",
    response_model=VersionInfo,
    responses=_NOT_FOUND,
    summary="One version",
)
def get_version(
    series_id: SeriesIdPath,
    version: Annotated[str, Path(description="The version, e.g. '2'.")],
    registry: RegistryDep,
) -> VersionInfo:
    """What one version was fitted with and on."""
    return VersionInfo.from_record(registry.model(series_id, _version_number(version)).record)


@router.delete(
    "/{series_id}/versions/{version}",
    response_model=DeleteResponse,
    responses=_NOT_FOUND,
    summary="Delete one version",
)
def delete_version(
    series_id: SeriesIdPath,
    version: Annotated[str, Path(description="The version to delete, e.g. '2'.")],
    registry: RegistryDep,
) -> DeleteResponse:
    """Delete one version. Its number is not reused; if it was the latest, the previous
    remaining version becomes the latest."""
    number = _version_number(version)
    registry.delete_version(series_id, number)
    return DeleteResponse(series_id=series_id, deleted_versions=[str(number)], deleted_count=1)


@router.get(
    "/{series_id:series}",
    response_model=SeriesDetail,
    responses=_NOT_FOUND,
    summary="A series and its versions",
)
def get_series(
    series_id: SeriesIdPath,
    registry: RegistryDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_VERSIONS_PAGE, description="Most versions in the answer.")
    ] = MAX_VERSIONS_PAGE,
    after: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_VERSION,
            description="Only versions numbered above this (the previous page's `next_after`).",
        ),
    ] = 0,
) -> SeriesDetail:
    """The stored versions of the series, oldest first, and which one is latest: up to
    `limit` (1,000) at a time; `next_after` says where the next page starts."""
    records, latest, more = registry.versions_page(series_id, after, limit)
    stream = registry.stream_info(series_id)
    return SeriesDetail(
        series_id=series_id,
        latest_version=str(latest),
        versions=[VersionInfo.from_record(record) for record in records],
        next_after=str(records[-1].version) if more and records else None,
        stream=None if stream is None else StreamInfo(**stream),
    )


@router.delete(
    "/{series_id:series}",
    response_model=DeleteResponse,
    responses=_NOT_FOUND,
    summary="Delete a series",
)
def delete_series(series_id: SeriesIdPath, registry: RegistryDep) -> DeleteResponse:
    """Delete every version of the series. A later fit continues the numbering
    (version numbers are never reused, so a cached answer never changes meaning)."""
    deleted = registry.delete_series(series_id)
    return DeleteResponse(series_id=series_id, deleted_count=deleted)
