"""One owner per series among the workers of ``anomaly-api serve --workers N``.

The workers share one listening socket, so the kernel hands a request to whichever
worker accepts it first: the points of one series would reach several processes, each
with its own idea of the series' history. So every series has one owner worker
(``crc32(series_id) % N``, the same in every process), and a worker that receives a
request about another worker's series passes it on over a Unix socket in the server's
run directory and relays the answer. Passed-on requests run through the owner's whole
application (its fast path, validation, errors), so answers are the same bytes wherever
the request arrived.

Each worker takes a slot ``0..N-1`` with an exclusive lock on ``slot-<i>.lock`` in the
run directory (a worker that died frees its slot, and uvicorn's replacement takes it)
and serves passed-on requests on ``worker-<i>.sock``. Its hold on series streams is
named ``<server id>:<slot>``, so a replacement resumes its slot's streams at once.

Requests passed on: ``POST /predict/{id}`` and ``/predict/{id}/batch``, the deletes of
``/series/{id}`` (the owner forgets the stream in the same request) and
``GET /series/{id}`` (the owner knows the live stream). Fits need not
be: the owner sees a new version through the store's change log before its next answer.
The bulk ``POST /predict`` splits its points by owner (:meth:`WorkerRouter.forward`).

Wire format of a passed-on request (and of its answer): a 4-byte big-endian length and a
JSON header (method, path, query string, headers; status and headers for the answer),
then a 4-byte length and the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from anomaly_api.api.asgi.layer import Layer

_log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_LENGTH = struct.Struct(">I")
PASSED_ON = b"x-anomaly-passed-on"
"""Header marking a request a worker passed on (its owner never passes it on again)."""
CONNECT_WAIT_S = 5.0
"""How long a request waits for another worker that is starting (or being replaced by
uvicorn after it died) before it is answered 503."""
SLOT_WAIT_S = 10.0
"""How long a starting worker waits for a free slot (its predecessor's may still be held
for a moment while it dies)."""


def owner_of(series_id: str, workers: int) -> int:
    """The worker slot that serves ``series_id``: the same in every process."""
    return zlib.crc32(series_id.encode("utf-8", "surrogatepass")) % workers


def claim_slot(run_dir: Path, workers: int) -> tuple[int, int]:
    """A free slot for this process and the descriptor whose lock holds it."""
    deadline = time.monotonic() + SLOT_WAIT_S
    while True:
        for slot in range(workers):
            descriptor = os.open(run_dir / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            return slot, descriptor
        if time.monotonic() > deadline:
            raise RuntimeError(f"no free worker slot among {workers} in {run_dir}")
        time.sleep(0.05)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    (size,) = _LENGTH.unpack(await reader.readexactly(4))
    header = orjson.loads(await reader.readexactly(size))
    (size,) = _LENGTH.unpack(await reader.readexactly(4))
    return header, await reader.readexactly(size)


def _frame(header: dict[str, Any], body: bytes) -> bytes:
    encoded = orjson.dumps(header)
    return b"".join((_LENGTH.pack(len(encoded)), encoded, _LENGTH.pack(len(body)), body))


class WorkerRouter:
    """This worker's slot, the server on its socket, and connections to the others."""

    def __init__(self, run_dir: Path, workers: int, slot: int) -> None:
        self.run_dir = run_dir
        self.workers = workers
        self.slot = slot
        self._idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self._server: asyncio.AbstractServer | None = None

    def socket_of(self, slot: int) -> Path:
        return self.run_dir / f"worker-{slot}.sock"

    def owns(self, series_id: str) -> bool:
        return owner_of(series_id, self.workers) == self.slot

    async def serve(self, app: ASGIApp) -> None:
        """Answer requests passed on by the other workers with ``app``."""
        path = self.socket_of(self.slot)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a dead predecessor's

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    try:
                        header, body = await _read_frame(reader)
                    except (asyncio.IncompleteReadError, ConnectionError):
                        return
                    status, headers, answer = await _call(app, header, body)
                    writer.write(_frame({"status": status, "headers": headers}, answer))
                    await writer.drain()
            finally:
                writer.close()

        self._server = await asyncio.start_unix_server(handle, path=str(path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()

    async def _connect(self, slot: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new connection to ``slot``'s worker, waiting up to :data:`CONNECT_WAIT_S`
        for one that is (re)starting."""
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            try:
                return await asyncio.open_unix_connection(str(self.socket_of(slot)))
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"worker {slot} cannot be reached: {exc}") from exc
                await asyncio.sleep(0.05)

    async def forward(
        self,
        slot: int,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> tuple[int, list[list[str]], bytes]:
        """Send a request to the worker in ``slot``; its status, headers and body. A
        worker that cannot be reached (restarting) raises :class:`ConnectionError`."""
        idle = self._idle.setdefault(slot, [])
        if idle:
            reader, writer = idle.pop()
        else:
            reader, writer = await self._connect(slot)
        header = {
            "method": method,
            "path": path,
            "query": query.decode("latin-1"),
            "headers": [
                [name.decode("latin-1"), value.decode("latin-1")] for name, value in headers
            ],
        }
        try:
            writer.write(_frame(header, body))
            await writer.drain()
            answer, payload = await _read_frame(reader)
        except (asyncio.IncompleteReadError, OSError) as exc:
            writer.close()
            raise ConnectionError(f"worker {slot} did not answer: {exc}") from exc
        idle.append((reader, writer))
        return int(answer["status"]), answer["headers"], payload


async def _call(
    app: ASGIApp, header: dict[str, Any], body: bytes
) -> tuple[int, list[list[str]], bytes]:
    """Run one passed-on request through ``app`` in this process."""
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in header["headers"]
    ]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": header["method"],
        "scheme": "http",
        "path": header["path"],
        "raw_path": header["path"].encode("utf-8", "surrogateescape"),
        "query_string": header["query"].encode("latin-1"),
        "root_path": "",
        "headers": [*headers, (PASSED_ON, b"1")],
        "client": None,
        "server": None,
        "state": {},
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    answer_headers: list[list[str]] = []
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status, answer_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers = [
                [bytes(name).decode("latin-1"), bytes(value).decode("latin-1")]
                for name, value in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)


def routed_series(method: str, path: str) -> str | None:
    """The series a request is about, when its owner must answer it; else None."""
    if method == "POST" and path.startswith("/predict/"):
        rest = path[len("/predict/") :]
        series_id = rest[: -len("/batch")] if rest.endswith("/batch") else rest
        return series_id or None
    if path.startswith("/series/"):
        rest = path[len("/series/") :]
        if method == "DELETE":
            return rest.partition("/versions/")[0] or None
        if method == "GET" and "/" not in rest:  # the series and its live stream
            return rest or None
    return None


class OwnerRouting(Layer):
    """The outermost ASGI layer with several workers: requests about a series that
    another worker owns are passed to it (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, router: Callable[[], WorkerRouter | None], max_bytes: int
    ) -> None:
        self.app = app
        self.router = router
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self.router()
        if router is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        series_id = routed_series(scope["method"], scope["path"])
        if series_id is None or router.owns(series_id) or _passed_on(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_all(receive, self.max_bytes)
        if body is None:  # the client went away
            return
        if len(body) > self.max_bytes:
            # Too large to pass on: this worker's own stack answers 413 from the replay.
            await self.app(scope, _replay(body), send)
            return
        try:
            status, headers, answer = await router.forward(
                owner_of(series_id, router.workers),
                scope["method"],
                scope["path"],
                scope.get("query_string", b""),
                list(scope.get("headers", [])),
                body,
            )
        except ConnectionError as exc:
            _log.warning("passing %s %s on failed: %s", scope["method"], scope["path"], exc)
            status, headers = 503, [["content-type", "application/json"], ["retry-after", "1"]]
            answer = orjson.dumps(
                {
                    "detail": f"the worker that serves series {series_id!r} is restarting; "
                    "retry shortly"
                }
            )
            headers.append(["content-length", str(len(answer))])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _passed_on(scope: Scope) -> bool:
    return any(name == PASSED_ON for name, _ in scope.get("headers", []))


async def _read_all(receive: Receive, limit: int) -> bytes | None:
    """The body, or its first ``limit + 1`` bytes when it is longer; None if the client
    went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False) or size > limit:
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
