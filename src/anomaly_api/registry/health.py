"""The health answer: the contract's healthcheck fields plus store and worker status."""

from __future__ import annotations

import logging
import time
from typing import Any

from anomaly_api import __version__
from anomaly_api.errors import StoreUnavailable
from anomaly_api.storage.base import ModelStore
from anomaly_api.telemetry import WorkerStats

_log = logging.getLogger(__name__)


def health(store: ModelStore, stats: WorkerStats, started_at: float) -> dict[str, Any]:
    """The contract's healthcheck fields plus store status, uptime and cache size.

    Latencies, ``models_cached`` and ``workers`` cover every live worker of the server
    when ``stats`` was given a run directory, this process alone otherwise.
    """
    store_error: str | None = None
    series_trained: int | None = None
    try:
        store.ping()
        series_trained = store.count_series()
    except StoreUnavailable as exc:
        _log.warning("healthcheck: %s", exc.message)
        store_error = exc.public
    server = stats.server_view()
    return {
        "series_trained": series_trained,
        "inference_latency_ms": server.inference_latency_ms,
        "training_latency_ms": server.training_latency_ms,
        "status": "ok" if store_error is None else "unavailable",
        "store": {
            "backend": store.backend,
            "ok": store_error is None,
            "error": store_error,
        },
        "models_cached": server.models_cached,
        "workers": server.workers,
        "uptime_s": round(time.time() - started_at, 3),
        "version": __version__,
    }
