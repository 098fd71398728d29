"""Heavy requests take turns: at most ``slots`` run at once in a worker process, up to
``queue`` more wait for a slot, and the rest are answered 503 with ``Retry-After`` at
once, before their body is read.

Heavy are the requests whose work grows with what they send or what is stored: fits,
one-off detects, batches, plots, a series' versions, and any request whose body is
larger than ``large_body`` bytes (or of unknown length). Everything else (single
predicts from the cache, listings, ``/healthcheck``, ``/metrics``) never waits here, so
they are answered while every slot is busy. The work inside each request is bounded
separately (``ANOMALY_MAX_REQUEST_WORK_S``: see ``ModelRegistry.check_work``).
"""

from __future__ import annotations

import math
import time

import anyio

from anomaly_api.api.asgi.answers import refuse
from anomaly_api.api.asgi.auth import ASGIApp, Receive, Scope, Send
from anomaly_api.api.asgi.layer import route_path

LARGE_BODY = 1 << 20
"""Bodies over this many bytes make any request heavy (about 50,000 points)."""
_SMOOTHING = 0.2  # weight of the latest duration in the running mean


def is_heavy(scope: Scope, large_body: int = LARGE_BODY) -> bool:
    """Whether the request has to take a slot (see the module docstring)."""
    method: str = scope["method"]
    path = route_path(scope)  # without a root path in front
    if method in ("GET", "HEAD"):
        return path == "/plot" or path.startswith(("/plot/", "/series/"))
    if method != "POST":
        return False
    if path.startswith(("/fit/", "/anomalydetector/")) or path.endswith("/batch"):
        return True
    if path in ("/detect", "/changepoints"):
        return True
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value) > large_body
            except ValueError:
                return True
    return True  # chunked: of unknown length


class HeavyQueue:
    """Let at most ``slots`` heavy requests run at once; up to ``queue`` wait for a slot
    at most ``wait_s`` seconds each; the others get 503 with ``Retry-After`` (the mean
    time of a heavy request times the requests ahead, per slot, in whole seconds)."""

    def __init__(
        self,
        app: ASGIApp,
        slots: int,
        queue: int,
        wait_s: float,
        large_body: int = LARGE_BODY,
    ) -> None:
        self.app = app
        self.slots = slots
        self.queue = queue
        self.wait_s = wait_s
        self.large_body = large_body
        self.running = 0
        self.waiting = 0
        self.mean_s = 1.0
        self._free = anyio.Semaphore(slots)

    def retry_after_s(self) -> int:
        ahead = self.running + self.waiting
        return min(60, max(1, math.ceil(self.mean_s * ahead / self.slots)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_heavy(scope, self.large_body):
            await self.app(scope, receive, send)
            return
        try:
            self._free.acquire_nowait()
        except anyio.WouldBlock:
            if not await self._wait_for_slot(send):
                return
        self.running += 1
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.running -= 1
            self._free.release()
            took = time.monotonic() - started
            self.mean_s += _SMOOTHING * (took - self.mean_s)

    async def _wait_for_slot(self, send: Send) -> bool:
        """Queue for a slot; False (and the request answered 503) when the queue is full
        or no slot came free in time."""
        if self.waiting >= self.queue:
            await self._busy(
                send,
                f"{self.running} heavy requests are running and {self.waiting} are waiting "
                "(the most this server queues: ANOMALY_HEAVY_QUEUE)",
            )
            return False
        self.waiting += 1
        try:
            with anyio.move_on_after(self.wait_s) as waited:
                await self._free.acquire()
        finally:
            self.waiting -= 1
        if waited.cancelled_caught:
            await self._busy(
                send,
                f"no slot for a heavy request came free within {self.wait_s:g} s "
                "(ANOMALY_HEAVY_WAIT_S)",
            )
            return False
        return True

    async def _busy(self, send: Send, why: str) -> None:
        retry = self.retry_after_s()
        await refuse(
            send,
            503,
            f"the server is busy with heavy requests: {why}; retry in {retry} s",
            headers=((b"retry-after", str(retry).encode()),),
        )
