"""Request dependencies, as ``Annotated`` aliases the routers declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from anomaly_api.api.asgi.auth import PRINCIPAL
from anomaly_api.auth import Principal
from anomaly_api.errors import InvalidInput
from anomaly_api.quotas import NO_LIMITS, Quota
from anomaly_api.registry import ModelRegistry
from anomaly_api.series_ids import MAX_SERIES_ID_LENGTH
from anomaly_api.settings import Settings

# Dependencies are ``async def`` so FastAPI calls them inline: a plain ``def`` dependency
# would be sent to the thread pool on every request.


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_quota(request: Request) -> Quota:
    """Whose request this is (the API key's name; None: anonymous) and what its fits may
    store: the key's own limits over the server's defaults."""
    settings: Settings = request.app.state.settings
    principal: Principal | None = request.scope.get(PRINCIPAL)
    if principal is None:
        return Quota.of(None, NO_LIMITS, settings.default_limits)
    return Quota.of(principal.name, principal.limits, settings.default_limits)


def parse_version(version: str | None) -> int | None:
    """The ``?version=`` query value as a positive integer; absent means latest."""
    if version is None or version.strip().lower() in {"", "latest"}:
        return None
    text = version.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise InvalidInput(
            f"version must be a positive integer such as 17 (or omitted for the latest), "
            f"got {version!r}",
            field="version",
        )
    return int(text)


async def version_query(
    version: Annotated[
        str | None,
        Query(
            description="Model version as a string such as '17'; omit it (or say 'latest') "
            "for the latest version.",
            examples=["1"],
            json_schema_extra={
                "pattern": r"^\s*(0*[1-9][0-9]{0,17}|[Ll][Aa][Tt][Ee][Ss][Tt])?\s*$"
            },
        ),
    ] = None,
) -> int | None:
    return parse_version(version)


async def observe_query(
    observe: Annotated[
        bool,
        Query(
            description="Whether the points join the series' history (default). "
            "observe=false scores them as the continuation of the history without "
            "remembering them: a what-if.",
        ),
    ] = True,
) -> bool:
    return observe


QuotaDep = Annotated[Quota, Depends(get_quota)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ObserveDep = Annotated[bool, Depends(observe_query)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VersionDep = Annotated[int | None, Depends(version_query)]
SeriesIdPath = Annotated[
    str,
    Path(
        description="The series: 1-256 letters or digits of any script, or _-.:@~ "
        "(no slashes or spaces).",
        examples=["sensor_1"],
        # Documented, not validated here: the registry checks ids with one rule and
        # one message for every route (the description says it). The pattern is a loose
        # superset that reads the same in every regex dialect: "\w" is any script in
        # Python but ASCII in JavaScript's, which made validators refuse ids the service
        # accepts (schemathesis found "Asò").
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_SERIES_ID_LENGTH,
            "pattern": r"^[^\s/?#%\\]+$",
        },
    ),
]
