"""A pure ASGI middleware that times every HTTP request for Prometheus.

Requests are labelled by the **route template** that answered (``/predict/{series_id}``),
which the router leaves in ``scope["route"]``, never by the raw path: one time series per
route, however many series ids clients send. A request no route matched (404 for an
unknown path, or refused before routing, such as a 413 on ``Content-Length``) counts
under :data:`UNMATCHED`. The time runs until the last byte of the response is sent.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anomaly_api import metrics

UNMATCHED = "other"
"""The ``handler`` label of requests no route answered."""


class MetricsMiddleware:
    """Call :func:`anomaly_api.metrics.observe_request` once per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before starting a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path_format", None) or UNMATCHED
            metrics.observe_request(handler, scope["method"], status, time.perf_counter() - started)
