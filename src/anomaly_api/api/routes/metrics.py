"""``GET /metrics``: Prometheus metrics of the whole server, and stream counters of the
most recently active series."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from anomaly_api.api.deps import RegistryDep, SettingsDep
from anomaly_api.errors import AnomalyApiError, StoreUnavailable
from anomaly_api.metrics import render
from anomaly_api.registry import ModelRegistry
from anomaly_api.registry.history import active_series

router = APIRouter(tags=["service"])

SERIES_GAUGES = (
    ("last_score", "anomaly_series_last_score", "The score of the series' newest point."),
    (
        "anomalies_last_hour",
        "anomaly_series_anomalies_last_hour",
        "Anomalous points in the hour up to the series' newest point.",
    ),
    (
        "anomalies_last_day",
        "anomaly_series_anomalies_last_day",
        "Anomalous points in the day up to the series' newest point.",
    ),
    (
        "incidents_last_day",
        "anomaly_series_incidents_last_day",
        "Incidents opened in the day up to the series' newest point.",
    ),
    (
        "last_timestamp",
        "anomaly_series_last_point_timestamp_seconds",
        "The timestamp of the series' newest point (its own clock).",
    ),
)


class _SeriesCounters(Collector):
    """The counters of ``GET /series/{id}`` for up to ``limit`` series, as gauges with a
    ``series_id`` label."""

    def __init__(self, registry: ModelRegistry, limit: int) -> None:
        self.registry = registry
        self.limit = limit

    def collect(self) -> list[GaugeMetricFamily]:
        families = {
            field: GaugeMetricFamily(name, text, labels=["series_id"])
            for field, name, text in SERIES_GAUGES
        }
        store, streams = self.registry.store, self.registry.streams
        try:
            chosen = active_series(store, streams, self.limit)
        except StoreUnavailable:  # the process's own metrics still answer
            chosen = []
        for series_id in chosen:
            try:
                info = self.registry.stream_info(series_id)
            except StoreUnavailable:
                break
            except AnomalyApiError:  # deleted meanwhile
                continue
            if info is None:
                continue
            for field, family in families.items():
                if info.get(field) is not None:
                    family.add_metric([series_id], float(info[field]))
        return list(families.values())


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
def prometheus_metrics(registry: RegistryDep, settings: SettingsDep) -> Response:
    """Counters and histograms in the Prometheus text format, summed over every worker of
    the server, whichever one answers:

    * `anomaly_http_request_duration_seconds` (its `_count` is the number of requests), by
      route template (`handler`, such as `/predict/{series_id}`), `method` and `status`;
    * `anomaly_fits_total`, `anomaly_points_scored_total` and
      `anomaly_anomalies_flagged_total`, by `detector`;
    * `anomaly_model_cache_hits_total`, `anomaly_model_cache_misses_total` and
      `anomaly_model_cache_size` (models in memory, over live workers).

    And, per series (label `series_id`), for the `ANOMALY_METRICS_SERIES` (100) most
    recently active series, what `GET /series/{id}` says of its stream:
    `anomaly_series_last_score`, `anomaly_series_anomalies_last_hour`,
    `anomaly_series_anomalies_last_day`, `anomaly_series_incidents_last_day` and
    `anomaly_series_last_point_timestamp_seconds`. Points another process has not saved
    yet (at most `ANOMALY_STREAM_FLUSH_S` old) are not in them.
    """
    body, content_type = render()
    if settings.metrics_series > 0:
        extra = CollectorRegistry()
        extra.register(_SeriesCounters(registry, settings.metrics_series))
        body += generate_latest(extra)
    return Response(body, media_type=content_type)
