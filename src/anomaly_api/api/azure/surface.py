"""The outermost layer for Azure's paths: where they lead, and the shape of every error
answered on them.

Azure clients send ``{endpoint}/anomalydetector/{version}/timeseries/{operation}/detect``,
where the endpoint may carry a path (``/ok/anomalydetector/...``) or a trailing slash
(``//anomalydetector/...``), and older clients spell the operation ``changePoint``. Such a
path is rewritten to ``/anomalydetector/{version}/timeseries/{operation}/detect`` with the
operation in lower case before any other layer sees it (so keys, scopes and the heavy
queue apply as to any route); an unknown version or operation is answered 404 here. Any
other path passes untouched.

Azure's SDKs call ``response.json()`` on every answer that is not 200 (an empty or text
body makes the 3.0.0b6 SDK raise a bare ``JSONDecodeError``), and read ``code`` from a
flat ``{"code", "message"}`` body. So every non-200 answer on these paths is JSON with an
``x-ms-error-code`` header: validation errors are the routes' own flat bodies; what other
layers answer in this service's shape (``{"detail": ...}``) is rewritten here: as the
Cognitive Services gateway did for keys and throttling (401, 403, 429:
``{"error": {"code": "401", "message": ...}}``) and for unknown routes (404), flat with
code ``BadArgument`` for other client errors, and in the gateway shape for 5xx.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from anomaly_api.api.asgi.auth import ASGIApp, Message, Receive, Scope, Send
from anomaly_api.api.asgi.layer import Layer

VERSIONS = ("v1.0", "v1.1", "v1.1-preview", "v1.1-preview.1")
OPERATIONS = ("entire", "last", "changepoint")
PREFIX = "/anomalydetector/"
AZURE = "anomaly.azure"
"""The scope key holding the API version of an Azure request."""
_PATH = re.compile(r"/anomalydetector/([^/]+)/timeseries/([^/]+)/detect/?$", re.IGNORECASE)
_GATEWAY = (401, 403, 404, 429)
_MAX_ERROR = 64 * 1024


def canonical(path: str) -> tuple[str, str] | None:
    """``(version, operation)`` of an Azure path with any prefix, doubled slashes and the
    operation in any case; None when it is not one."""
    match = _PATH.search(re.sub(r"/{2,}", "/", path))
    if match is None:
        return None
    return match.group(1), match.group(2).lower()


def error_body(status: int, body: bytes) -> tuple[bytes, bytes]:
    """An error answer of another layer in Azure's shape, and its ``x-ms-error-code``."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str) and "message" in parsed:
        return body, parsed["code"].encode()  # already Azure's (the routes' own)
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return body, str(parsed["error"].get("code", status)).encode()
    if isinstance(parsed, dict) and "detail" in parsed:
        message = str(parsed["detail"])
    else:
        message = body[:_MAX_ERROR].decode("utf-8", "replace") or f"HTTP {status}"
    if status in _GATEWAY or status >= 500:
        return orjson.dumps({"error": {"code": str(status), "message": message}}), str(
            status
        ).encode()
    return orjson.dumps({"code": "BadArgument", "message": message}), b"BadArgument"


class AzureSurface(Layer):
    """Route Azure's paths to their canonical form; answer their errors in Azure's shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            canonical(scope["path"])
            if scope["type"] == "http" and "anomalydetector" in scope["path"].lower()
            else None
        )
        if found is None:  # not Azure's (a series may be called "anomalydetector")
            await self.app(scope, receive, send)
            return
        if found[0] not in VERSIONS or found[1] not in OPERATIONS:
            await _answer(send, 404, b"Resource not found")
            return
        version, operation = found
        path = f"{PREFIX}{version}/timeseries/{operation}/detect"
        scope = {**scope, "path": path, "raw_path": path.encode(), AZURE: version}
        await self.app(scope, receive, _AzureErrors(send))


class _AzureErrors:
    """A ``send`` that holds back a non-200 answer until its body is complete, then sends
    it in Azure's shape."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.parts: list[bytes] = []
        self.size = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        chunk = message.get("body", b"")
        if self.size < _MAX_ERROR:
            self.parts.append(chunk[: _MAX_ERROR - self.size])
            self.size += len(chunk)
        if message.get("more_body", False):
            return
        status = int(self.start["status"])
        body, code = error_body(status, b"".join(self.parts))
        kept = [
            (name, value)
            for name, value in self.start.get("headers", [])
            if name.lower() not in (b"content-type", b"content-length", b"x-ms-error-code")
        ]
        headers = [
            *kept,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-ms-error-code", code),
        ]
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


async def _answer(send: Send, status: int, message: bytes) -> None:
    body, code = error_body(status, orjson.dumps({"detail": message.decode()}))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-ms-error-code", code),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
