"""Slow and greedy clients against a real ``anomaly-api serve`` (``api/protocol.py``):
heads and bodies that stall are answered 408 and their connections closed, oversized
heads 400, connections beyond ``ANOMALY_MAX_CONNECTIONS`` 503; normal and kept-alive
requests are unaffected."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anomaly_api.bench_server import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("slow-clients")
    env = {"ANOMALY_HEADER_TIMEOUT_S": "0.5", "ANOMALY_BODY_TIMEOUT_S": "0.5"}
    with ServerProcess(workdir / "m.db", log=workdir / "server.log", env=env) as process:
        yield process


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks: list[bytes] = []
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _response(connection: socket.socket) -> bytes:
    """One whole response on a kept-alive connection (head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def _request(path: str, body: bytes = b"", method: str = "POST") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_a_connection_that_sends_nothing_is_closed_with_408(server: ServerProcess) -> None:
    with _connect(server) as connection:
        started = time.monotonic()
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: ServerProcess) -> None:
    with _connect(server) as connection:
        started = time.monotonic()
        for byte in b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ":
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break  # closed on us: what this test wants
            time.sleep(0.05)
            if time.monotonic() - started > 5:
                break
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5


def test_a_stalled_body_is_answered_408(server: ServerProcess) -> None:
    with _connect(server) as connection:
        request = _request("/fit/slow", b'{"timestamps": [1, 2, 3], "values": [1, 2, 3]}')
        connection.sendall(request[:-10])  # all but the end of the body
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 408")


def test_an_oversized_head_is_refused(server: ServerProcess) -> None:
    with _connect(server) as connection:
        head = b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(80))
        with contextlib.suppress(OSError):
            connection.sendall(head + b"\r\n")
        answer = _answer(connection)
    assert answer.startswith(b"HTTP/1.1 400")


def test_kept_alive_connections_may_idle_between_requests(server: ServerProcess) -> None:
    body = b'{"timestamps": [1, 2, 3, 4, 5], "values": [1, 2, 3, 2, 1]}'
    with _connect(server) as connection:
        connection.sendall(_request("/fit/kept", body))
        first = _response(connection)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(1.0)  # longer than the head deadline, shorter than keep-alive (5 s)
        connection.sendall(_request("/healthcheck", method="GET"))
        second = _response(connection)
        assert second.startswith(b"HTTP/1.1 200"), second


def test_connections_beyond_the_limit_are_answered_503(tmp_path: Path) -> None:
    env = {"ANOMALY_MAX_CONNECTIONS": "20"}
    with ServerProcess(tmp_path / "m.db", log=tmp_path / "server.log", env=env) as server:
        held = [_connect(server) for _ in range(25)]  # open, sending nothing
        try:
            with _connect(server) as extra:
                extra.sendall(_request("/healthcheck", method="GET"))
                answer = extra.recv(65536)
            assert answer.startswith(b"HTTP/1.1 503"), answer
        finally:
            for connection in held:
                connection.close()
        time.sleep(0.5)
        with _connect(server) as connection:
            connection.sendall(_request("/healthcheck", method="GET"))
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
