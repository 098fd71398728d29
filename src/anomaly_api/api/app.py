"""``create_app(settings)``: the FastAPI application, built explicitly.

Nothing is read from the environment at import time; the store opens in the lifespan
and closes on shutdown, so each app (and each test) owns its own database.
"""

from __future__ import annotations

import gc
import importlib
import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware

from anomaly_api import __version__, audit, metrics
from anomaly_api.api.asgi.audit import AuditLog
from anomaly_api.api.asgi.auth import ASGIApp, Authenticate
from anomaly_api.api.asgi.browsers import BrowserGuard
from anomaly_api.api.asgi.heavy import HeavyQueue
from anomaly_api.api.asgi.quotas import FitQuota
from anomaly_api.api.asgi.workers import OwnerRouting, WorkerRouter, claim_slot
from anomaly_api.api.azure import routes as azure_routes
from anomaly_api.api.azure.surface import AzureSurface
from anomaly_api.api.columnar import BatchRequest, DetectRequest
from anomaly_api.api.errors import install_error_handlers
from anomaly_api.api.fast import FastPredict
from anomaly_api.api.limits import BodySizeLimit
from anomaly_api.api.metrics_middleware import MetricsMiddleware
from anomaly_api.api.routes import (
    batch,
    bulk,
    changepoints,
    detectors,
    docs,
    health,
    history,
    keys,
    models,
    plot,
    series,
)
from anomaly_api.api.routes import metrics as metrics_route
from anomaly_api.api.routes.bulk import BulkRequest
from anomaly_api.api.routes.changepoints import ChangePointRequest
from anomaly_api.api.routes.keys import KeyRequest
from anomaly_api.api.schemas import ErrorResponse, FitRequest, PredictRequest
from anomaly_api.api.ui import routes as ui_routes
from anomaly_api.auth import Keyring
from anomaly_api.azure.errors import AzureRequestError
from anomaly_api.registry import ModelRegistry
from anomaly_api.registry.retention import RetentionSweep
from anomaly_api.settings import Settings
from anomaly_api.storage import open_store

DESCRIPTION = """
Train a model per time series, then ask whether new points are anomalous, and why.

* `POST /fit/{series_id}` stores a new, immutable **version** (1, 2, 3 …) of the series' model.
* `POST /predict/{series_id}?version=V` scores a point against a version (latest when omitted)
  and returns the expected value, the normal band, a graded score and the direction.
* `GET /series`, `GET /series/{series_id}`, `DELETE …` manage what is stored;
  `GET /series/{series_id}/points` is what was scored, point by point.
* `GET /plot/{series_id}` draws a model over its training data and what it scored since;
  `GET /healthcheck` reports health; the dashboard is at [`/ui`](/ui).

Errors are `{"detail": "..."}` with a sentence that names the field or the missing thing.
"""


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The ASGI app to serve for ``settings`` (read from ``ANOMALY_*`` variables when None):
    the stack, outermost first: CORS (only for ``settings.cors_origins``), the audit log
    of fits, deletes and key changes (:mod:`anomaly_api.api.asgi.audit`), the browser
    guard (host names, simple cross-origin writes: :mod:`anomaly_api.api.asgi.browsers`),
    API keys and scopes (:mod:`anomaly_api.api.asgi.auth`, when
    ``settings.auth_required``), fits per minute per key
    (:mod:`anomaly_api.api.asgi.quotas`, when set), requests about another worker's
    series passed on to it (:mod:`anomaly_api.api.asgi.workers`, with ``--workers``
    above 1), the predict fast
    path (:mod:`anomaly_api.api.fast`), then :func:`create_api`'s FastAPI application; all
    of it inside the Azure surface (:mod:`anomaly_api.api.azure.surface`), which gives
    Azure's paths their canonical form and their errors Azure's shape."""
    settings = settings or Settings()
    keyring = Keyring() if settings.auth_required else None
    api = create_api(settings, keyring)
    inner: ASGIApp
    if settings.workers == 1:
        inner = FastPredict(api)  # one worker owns every series: nothing to pass on
    else:
        inner = OwnerRouting(
            FastPredict(api), lambda: api.state._state.get("router"), settings.max_body_bytes
        )
    if settings.quota_fits_per_minute:
        inner = FitQuota(inner, settings.quota_fits_per_minute)
    if keyring is not None:
        inner = Authenticate(inner, keyring)
    inner = BrowserGuard(
        inner,
        settings.allowed_hosts,
        any_host=settings.auth_required and not settings.allowed_hosts,
    )
    audit.configure(settings.audit_log)
    inner = AuditLog(inner)
    if settings.cors_origins:
        inner = CORSMiddleware(
            inner,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Ocp-Apim-Subscription-Key"],
            max_age=600,
        )
    return AzureSurface(inner)  # outermost: every layer sees Azure's canonical paths


def create_api(settings: Settings | None = None, keyring: Keyring | None = None) -> FastAPI:
    """The FastAPI application: every route, its validation, errors and documentation;
    ``keyring`` (API keys required) is loaded from the store while the app runs."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owner, router, slot_lock = settings.instance_id, None, None
        run_dir = metrics.run_dir()
        if settings.workers > 1 and run_dir is not None:
            # One owner per series among the workers (see api/asgi/workers.py).
            slot, slot_lock = claim_slot(run_dir, settings.workers)
            router = WorkerRouter(run_dir, settings.workers, slot)
            owner = f"{settings.instance_id or socket.gethostname()}:{slot}"
        store = open_store(
            settings.database_url,
            busy_timeout_s=settings.store_busy_timeout_s,
            pool_size=settings.database_pool_size,
            connect_timeout_s=settings.database_timeout_s,
            statement_timeout_s=settings.database_statement_timeout_s,
        )
        registry = ModelRegistry(
            store,
            default_detector=settings.default_detector,
            model_cache_size=settings.model_cache_size,
            model_cache_bytes=settings.model_cache_bytes,
            training_points_cap=settings.training_points_cap,
            latency_window=settings.latency_window,
            run_dir=metrics.run_dir(),
            freeze_models=True,
            owner=owner,
            stream_cache_size=settings.stream_cache_size,
            stream_flush_s=settings.stream_flush_s,
            stream_lease_s=settings.stream_lease_s,
            stream_keep_points=settings.stream_history_points,
            stream_max_pending=settings.stream_max_pending,
            max_work_s=settings.max_request_work_s,
        )
        app.state.registry = registry
        app.state.router = router
        if keyring is not None:
            keyring.start(store.active_keys)
        retention = RetentionSweep(
            store, settings.default_limits, history_s=settings.history_days * 86_400.0
        )
        retention.start()
        if router is not None:
            await router.serve(FastPredict(app))
        # matplotlib takes about a second to import; do it off the request path, without
        # delaying start-up, so the first /plot is as fast as the others.
        threading.Thread(target=_warm_up_plotting, name="warm-up-plotting", daemon=True).start()
        _freeze_startup_objects()
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            retention.stop()
            if keyring is not None:
                keyring.stop()
            if router is not None:
                await router.close()
            registry.close()
            if slot_lock is not None:
                os.close(slot_lock)  # the slot is free for a successor
            gc.unfreeze()  # what this app built may be collected again

    app = FastAPI(
        title="Anomaly Detection API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served with local assets by routes/docs.py
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.auth_required = keyring is not None
    install_error_handlers(app)
    app.add_exception_handler(AzureRequestError, azure_routes.azure_error)
    # batch first: /predict/{id}/batch would otherwise be read as the id "{id}/batch".
    for router in (
        batch.router,
        bulk.router,
        models.router,
        history.router,  # before series: /series/{id} would take "{id}/points" as an id
        series.router,
        health.router,
        detectors.router,
        plot.router,
        keys.router,
        changepoints.router,
        azure_routes.router,
    ):
        app.include_router(router)
    app.include_router(metrics_route.router)
    docs.install(app)
    ui_routes.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        HeavyQueue,
        slots=settings.heavy_slots,
        queue=settings.heavy_queue,
        wait_s=settings.heavy_wait_s,
    )
    app.add_middleware(MetricsMiddleware)  # outside the size limit, so a 413 is counted too
    _complete_openapi(
        app,
        (
            FitRequest,
            PredictRequest,
            BatchRequest,
            DetectRequest,
            ChangePointRequest,
            BulkRequest,
            KeyRequest,
            ErrorResponse,
        ),
    )
    return app


YOUNG_GENERATION_THRESHOLD = 100_000
"""Container objects allocated (net of those freed) between collections of the garbage
collector's youngest generation: CPython's default is 700 (2,000 on 3.13).

What a request leaves alive for a while is not garbage: the answers until they are
written, the observed points until the next save (a bulk request of 10,000 points
keeps ~30,000 such objects). At 700 the collector walked them dozens of times per bulk
request, and in full passes, every few requests, every unsaved point of every series:
in-process, 60 bulk requests of 10,000 points spent 0.98 µs a point in the collector
(``gc.callbacks``), against 0.15 µs at 100,000. In ten paired runs of
``benchmarks/bulk.py`` the endpoint answered -12% to +35% more points per second (median
+13%; the shared machine's noise is of that size). Cyclic garbage is found later: after
up to this many more allocations. The server's lifespan sets it and restores the
previous value on shutdown."""


def _warm_up_plotting() -> None:
    importlib.import_module("anomaly_api.plotting")
    _freeze_startup_objects()


def _freeze_startup_objects() -> None:
    """Exempt what start-up built (modules, routes, schemas: ~10^5 objects) from the
    garbage collector's full passes, which otherwise walk them all every few thousand
    requests: a pause of milliseconds that lands in the p99 (the practice CPython's
    ``gc.freeze`` was added for)."""
    gc.collect()
    gc.freeze()


def _complete_openapi(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Make the schema tell the truth about what the routes do themselves.

    Request models the routes read with :mod:`anomaly_api.api.body` join the components,
    and every 422 is documented as the ``{"detail": "..."}`` body the error handlers send
    rather than FastAPI's default list of validation errors.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            error_body = {"$ref": "#/components/schemas/ErrorResponse"}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    response = operation.get("responses", {}).get("422")
                    if response is not None:
                        response["content"] = {"application/json": {"schema": error_body}}
            for default in ("HTTPValidationError", "ValidationError"):
                components.pop(default, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
