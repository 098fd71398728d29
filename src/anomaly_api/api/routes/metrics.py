"""``GET /metrics``: Prometheus metrics of the whole server."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from anomaly_api.metrics import render

router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The Prometheus text exposition format.",
        }
    },
    summary="Prometheus metrics of every worker",
)
def prometheus_metrics() -> Response:
    """Counters and histograms in the Prometheus text format, summed over every worker of
    the server, whichever one answers:

    * `anomaly_http_request_duration_seconds` (its `_count` is the number of requests), by
      route template (`handler`, such as `/predict/{series_id}`), `method` and `status`;
    * `anomaly_fits_total`, `anomaly_points_scored_total` and
      `anomaly_anomalies_flagged_total`, by `detector`;
    * `anomaly_model_cache_hits_total`, `anomaly_model_cache_misses_total` and
      `anomaly_model_cache_size` (models in memory, over live workers).
    """
    body, content_type = render()
    return Response(body, media_type=content_type)
