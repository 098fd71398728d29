"""``GET /healthcheck``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from anomaly_api.api.asgi.auth import PRINCIPAL
from anomaly_api.api.deps import RegistryDep
from anomaly_api.api.errors import RETRY_AFTER_S
from anomaly_api.api.schemas import HealthResponse

router = APIRouter(tags=["service"])


@router.get(
    "/healthcheck",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "The model store is down."}},
    summary="Service health and recent latencies",
)
def healthcheck(registry: RegistryDep, request: Request) -> JSONResponse:
    """`series_trained` is counted in the store (every process agrees). Latencies cover
    the most recent `ANOMALY_LATENCY_WINDOW` fits and predicts of each worker, merged
    over all live workers of the server (`workers` says how many), as is
    `models_cached`. Answers 503 with `status: "unavailable"` when the store does not
    answer. `HEAD` answers the same status without a body (load balancers' probes). With
    API keys required, callers without a key holding `read` get only
    `status`."""
    health = HealthResponse.model_validate(registry.health())
    principal = request.scope.get(PRINCIPAL)
    if request.app.state.auth_required and (principal is None or "read" not in principal.scopes):
        # Load balancers need no more; the detail (store, latencies) is for key holders.
        status = 200 if health.status == "ok" else 503
        headers = None if status == 200 else {"Retry-After": RETRY_AFTER_S}
        return JSONResponse({"status": health.status}, status_code=status, headers=headers)
    if health.status == "ok":
        return JSONResponse(health.model_dump(mode="json"))
    return JSONResponse(
        health.model_dump(mode="json"), status_code=503, headers={"Retry-After": RETRY_AFTER_S}
    )


@router.head("/healthcheck", include_in_schema=False)
def healthcheck_probe(registry: RegistryDep, request: Request) -> Response:
    """`HEAD /healthcheck`: the status of `GET`, no body (load balancers' probes)."""
    answer = healthcheck(registry, request)
    headers = {"Retry-After": RETRY_AFTER_S} if answer.status_code == 503 else None
    return Response(status_code=answer.status_code, headers=headers)
