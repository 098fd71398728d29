"""``/keys``: API keys managed over HTTP by a key with the ``admin`` scope (the same
operations as ``anomaly-api keys``). Only served while keys are required: with them off,
the CLI manages keys, and no web page can create one through a local service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from anomaly_api.api.body import documented_body, json_body
from anomaly_api.api.deps import RegistryDep
from anomaly_api.api.schemas import ErrorResponse, error_responses
from anomaly_api.auth import KeyRecord, check_name, digest, new_key, parse_scopes
from anomaly_api.errors import NotFound
from anomaly_api.quotas import Limits

router = APIRouter(prefix="/keys", tags=["keys"])
_OFF: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorResponse,
        "description": "Keys are not required (ANOMALY_AUTH off), or no such active key.",
    }
}


class KeyLimits(BaseModel):
    max_series: int | None = Field(
        None, ge=0, description="Series its fits may hold; null: ANOMALY_QUOTA_SERIES, 0: none."
    )
    max_points: int | None = Field(
        None,
        ge=0,
        description="Training points its versions may hold; null: ANOMALY_QUOTA_POINTS.",
    )
    retention_days: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Days its versions are kept (each series' latest excepted); null: "
        "ANOMALY_RETENTION_DAYS, 0: until deleted.",
    )


class KeyInfo(KeyLimits):
    name: str
    scopes: list[str]
    created_at: float = Field(description="Unix seconds (UTC).")
    revoked_at: float | None = Field(None, description="Unix seconds (UTC); null: active.")


class NewKey(KeyInfo):
    key: str = Field(description="The key itself: shown in this answer only.")


class KeyRequest(KeyLimits):
    name: str = Field(description="1 to 64 letters, digits, '.', '_' or '-'.")
    scopes: list[str] = Field(description="Of read, predict, write, admin.")


def _info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(
        name=record.name,
        scopes=list(record.scopes),
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        max_series=record.limits.max_series,
        max_points=record.limits.max_points,
        retention_days=record.limits.retention_days,
    )


def _check_enabled(request: Request) -> None:
    if not request.app.state.auth_required:
        raise NotFound(
            "key management over HTTP needs ANOMALY_AUTH=required; use `anomaly-api keys`"
        )


@router.get(
    "", response_model=list[KeyInfo], responses=_OFF, summary="List API keys (never the keys)"
)
def list_keys(request: Request, registry: RegistryDep) -> list[KeyInfo]:
    """Every key ever created, revoked ones included, by name."""
    _check_enabled(request)
    return [_info(record) for record in registry.store.list_keys()]


@router.post(
    "",
    response_model=NewKey,
    status_code=201,
    responses={**_OFF, **error_responses(422)},
    summary="Create an API key",
    openapi_extra=documented_body(KeyRequest),
)
def create_key(
    request: Request,
    registry: RegistryDep,
    body: Annotated[KeyRequest, Depends(json_body(KeyRequest))],
) -> JSONResponse:
    """The answer holds the key; it is not stored, only its SHA-256 digest is."""
    _check_enabled(request)
    name = check_name(body.name)
    scopes = parse_scopes(body.scopes)
    key = new_key()
    limits = Limits(body.max_series, body.max_points, body.retention_days)
    record = registry.store.create_key(name, digest(key), scopes, limits)
    answer = NewKey(**_info(record).model_dump(), key=key)
    return JSONResponse(answer.model_dump(mode="json"), status_code=201)


@router.delete(
    "/{name}",
    response_model=KeyInfo,
    responses={**_OFF, **error_responses(422)},
    summary="Revoke an API key",
)
def revoke_key(
    request: Request, registry: RegistryDep, name: Annotated[str, Path(max_length=64)]
) -> KeyInfo:
    """Every process sharing the store refuses the key within a second."""
    _check_enabled(request)
    if not registry.store.revoke_key(name):
        raise NotFound(f"no active key named {name!r}")
    for record in registry.store.list_keys():
        if record.name == name:
            return _info(record)
    raise NotFound(f"no key named {name!r}")
