"""uvicorn's httptools protocol with deadlines for slow clients (slowloris).

uvicorn times out a connection that is idle between requests (keep-alive, 5 s), but not
one that never completes a request: a client that opens connections and sends a byte of
headers now and then holds them forever, until the process runs out of file
descriptors and real clients are refused. Here:

- a request's head (request line and headers) must arrive within ``header_timeout_s``
  of its first byte, or of the connection being opened: otherwise 408 and the
  connection is closed;
- while a body is being sent, at most ``body_timeout_s`` may pass without a byte of it
  (as nginx's ``client_body_timeout``): otherwise 408 (when no answer has started) and
  the connection is closed; the application sees the client as gone;
- the head may hold at most :data:`MAX_HEAD_BYTES` (counted per read that does not
  complete it; the request is then answered 400).

Requests that arrive whole in one read (nearly all) cost no timer at all: one timer per
connection is scheduled only while a head or a body is incomplete, and moved forward
lazily. ``anomaly-api serve`` uses this class; the figures come from
``ANOMALY_HEADER_TIMEOUT_S`` and ``ANOMALY_BODY_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from anomaly_api.settings import Settings

MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers together; more is refused (as nginx's large buffers)."""


@functools.cache
def _timeouts() -> tuple[float, float]:
    settings = Settings()
    return settings.header_timeout_s, settings.body_timeout_s


class HeadTooLarge(Exception):
    """A head over :data:`MAX_HEAD_BYTES` that arrived whole in one read."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with the deadlines of the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s, self.body_timeout_s = _timeouts()
        self._in_head = True  # a fresh connection owes a request head
        self._head_bytes = 0
        self._read_bytes = 0
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- the deadline ------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._deadline is not None and self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:  # moved forward meanwhile
            self._schedule()
            return
        self._deadline = None
        if self._in_head:
            self._send_408("the request head was not received in time")
        elif self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            self._send_408("the request body stalled")
        else:
            self.transport.close()

    def _send_408(self, message: str) -> None:
        body = f"408 Request Timeout: {message}".encode()
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()

    # -- protocol and parser callbacks -------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.time() + self.header_timeout_s
        self._schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._read_bytes = len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._in_head:
            # Still no end of head: all of this read was head. Its deadline is set at
            # the first such read (or when the connection opened) and does not move.
            if self._deadline is None:
                self._deadline = self.loop.time() + self.header_timeout_s
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.send_400_response(f"request head over {MAX_HEAD_BYTES} bytes")
                return
        elif cycle is not None and cycle.more_body and not cycle.response_complete:
            self._deadline = self.loop.time() + self.body_timeout_s
        else:
            self._deadline = None
        self._schedule()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # a new request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0

    def on_headers_complete(self) -> None:
        if self._head_bytes + self._read_bytes > MAX_HEAD_BYTES and self._head_size() > (
            MAX_HEAD_BYTES
        ):
            raise HeadTooLarge  # httptools makes it a parser error: uvicorn answers 400
        self._in_head = False
        self._deadline = None
        super().on_headers_complete()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)


FILES_BESIDES_CONNECTIONS = 256
"""Open files a worker needs besides client connections (store, logs, run directory,
connections between workers)."""


def connection_limit(max_connections: int) -> int:
    """Raise this process's open-file limit (soft, up to the hard one) so that
    ``max_connections`` client connections fit beside the service's own files, and
    return how many connections then fit: uvicorn's ``limit_concurrency``, beyond which
    requests are answered 503 instead of connections failing for want of descriptors."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FILES_BESIDES_CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(10, min(max_connections, soft - FILES_BESIDES_CONNECTIONS))
