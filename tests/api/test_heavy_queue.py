"""Heavy requests take turns (``api/asgi/heavy.py``): ``slots`` run, ``queue`` wait, the
rest get 503 with Retry-After before their body is read; light requests never wait."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest

from anomaly_api.api.asgi.heavy import HeavyQueue, is_heavy

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _scope(method: str, path: str, length: int | None = 10) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "method": method, "path": path, "headers": headers}


@pytest.mark.parametrize(
    ("method", "path", "length", "heavy"),
    [
        ("POST", "/fit/s", 10, True),
        ("POST", "/detect", 10, True),
        ("POST", "/predict/s/batch", 10, True),
        ("GET", "/plot/s", None, True),
        ("GET", "/plot", None, True),
        ("GET", "/series/s", None, True),
        ("POST", "/predict/s", 100, False),
        ("POST", "/predict/s", 2 << 20, True),  # a large body, whatever the route
        ("POST", "/predict", None, True),  # chunked: of unknown length
        ("POST", "/predict", 5000, False),
        ("GET", "/series", None, False),
        ("GET", "/healthcheck", None, False),
        ("GET", "/metrics", None, False),
        ("DELETE", "/series/s", None, False),
    ],
)
def test_which_requests_are_heavy(method: str, path: str, length: int | None, heavy: bool) -> None:
    assert is_heavy(_scope(method, path, length)) is heavy


class Gate:
    """An app whose heavy requests hold until released; answers 200."""

    def __init__(self) -> None:
        self.entered = 0
        self.release = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered += 1
        if is_heavy(scope):
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: HeavyQueue, scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"])


async def test_slots_then_queue_then_503_and_light_requests_pass() -> None:
    gate = Gate()
    queue = HeavyQueue(gate, slots=2, queue=1, wait_s=30)
    results: list[int] = []

    async def heavy() -> None:
        results.append((await _call(queue, _scope("POST", "/fit/s")))[0])

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(heavy)
        with anyio.fail_after(5):
            while queue.running < 2 or queue.waiting < 1:
                await anyio.sleep(0.01)
        assert gate.entered == 2  # the third waits, its body unread
        status, headers = await _call(queue, _scope("POST", "/detect"))
        assert status == 503
        assert int(headers[b"retry-after"]) >= 1
        # light requests are answered while every slot is busy
        assert (await _call(queue, _scope("GET", "/healthcheck")))[0] == 200
        assert (await _call(queue, _scope("POST", "/predict/s", 60)))[0] == 200
        gate.release.set()
    assert results == [200, 200, 200]
    assert queue.running == 0 and queue.waiting == 0


async def test_a_request_that_waits_too_long_gets_503() -> None:
    gate = Gate()
    queue = HeavyQueue(gate, slots=1, queue=5, wait_s=0.2)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_call, queue, _scope("POST", "/fit/a"))
        with anyio.fail_after(5):
            while queue.running < 1:
                await anyio.sleep(0.01)
        status, headers = await _call(queue, _scope("POST", "/fit/b"))
        assert status == 503
        assert b"retry-after" in headers
        gate.release.set()
    assert queue.waiting == 0 and queue.running == 0
    assert (await _call(queue, _scope("POST", "/fit/c")))[0] == 200
