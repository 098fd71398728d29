"""Fits per minute per API key (``ANOMALY_QUOTA_FITS_PER_MINUTE``), answered 429 with
``Retry-After`` beyond it.

Each key (each client address when keys are off) has a token bucket holding up to a
minute's allowance, refilled continuously: a client may send a minute's fits at once,
then as many as the allowance lets through each second. The buckets live in each worker
process: with several workers or replicas a key may fit up to that many times the
allowance, so set it per process. Off (0) by default; every fit, refused or not, is in
the audit log.
"""

from __future__ import annotations

import math
import time

from anomaly_api.api.asgi.answers import refuse
from anomaly_api.api.asgi.auth import PRINCIPAL, ASGIApp, Receive, Scope, Send
from anomaly_api.api.asgi.layer import Layer, route_path

_MAX_BUCKETS = 100_000  # distinct keys or addresses remembered (full buckets are dropped)


class FitQuota(Layer):
    """Refuse ``POST /fit/...`` beyond ``per_minute`` per key with 429."""

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.per_minute = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens, as of when)

    def take(self, who: str, now: float | None = None) -> float:
        """Take one fit from ``who``'s bucket: 0 when allowed, else the seconds until
        one is."""
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.get(who, (self.per_minute, now))
        tokens = min(self.per_minute, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if len(self._buckets) >= _MAX_BUCKETS and who not in self._buckets:
            self._forget_full(now)
        self._buckets[who] = (tokens - 1.0, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold nothing a new one would not)."""
        for who, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.rate >= self.per_minute:
                del self._buckets[who]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not route_path(scope).startswith("/fit/")
        ):
            await self.app(scope, receive, send)
            return
        principal = scope.get(PRINCIPAL)
        if principal is not None:
            who = f"key {principal.name!r}"
        else:
            client = scope.get("client")
            who = f"address {client[0] if client else 'unknown'}"
        wait = self.take(who)
        if wait > 0.0:
            retry = max(1, math.ceil(wait))
            await refuse(
                send,
                429,
                f"{who} has used its {self.per_minute:g} fits per minute "
                f"(ANOMALY_QUOTA_FITS_PER_MINUTE); retry in {retry} s",
                headers=((b"retry-after", str(retry).encode()),),
            )
            return
        await self.app(scope, receive, send)
