"""The outermost layer: every request's API key and scope, checked before anything else
runs (the predict fast path included).

A key is sent as ``Authorization: Bearer KEY`` or ``Ocp-Apim-Subscription-Key: KEY``
(what Azure Anomaly Detector's clients send). Which scope a route needs
(:func:`required_scope`): ``/healthcheck``, the API documentation and the dashboard's
pages and assets are open (the healthcheck shows its detail only to a key with
``read``); ``/keys`` needs ``admin``;
reads need ``read``; scoring (``POST /predict...``, ``POST /detect``, ``POST
/changepoints``, Azure's ``POST /anomalydetector/...``) needs ``predict``;
every other request (fits, deletes) needs ``write``. Refusals are small JSON bodies in
the service's error shape: 401 for a missing, unknown or revoked key (with
``WWW-Authenticate: Bearer``), 403 naming the missing scope, 503 when the keys could not
be read from the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from anomaly_api.api.asgi.answers import refuse
from anomaly_api.api.asgi.layer import Layer, route_path
from anomaly_api.auth import Keyring, Principal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRINCIPAL = "anomaly.principal"
"""The scope key under which the layer leaves the request's :class:`Principal` (or None)."""
OPEN_PATHS = frozenset(
    {
        "/healthcheck",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/ui",
        "/ui/series",
    }
)
"""Pages without data: the API's documentation and the dashboard's pages (their data
comes from API calls, which need keys)."""
_BEARER = b"bearer "
_MAX_KEY = 512


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for the open routes."""
    if path in OPEN_PATHS or path.startswith(("/docs-assets/", "/ui/assets/")):
        return None
    if path == "/keys" or path.startswith("/keys/"):
        return "admin"
    if method in ("GET", "HEAD"):
        return "read"
    if method == "POST" and (
        path.startswith(("/predict", "/anomalydetector/")) or path in ("/detect", "/changepoints")
    ):
        return "predict"
    return "write"


def credential(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request sends, if any (``Authorization: Bearer`` first)."""
    subscription = None
    for name, value in headers:
        if name == b"authorization":
            if value[: len(_BEARER)].lower() == _BEARER:
                return value[len(_BEARER) :].strip()
            return b""  # another scheme: not a key of ours
        if name == b"ocp-apim-subscription-key":
            subscription = value.strip()
    return subscription


class Authenticate(Layer):
    """Refuse requests without a key holding the scope their route needs."""

    def __init__(self, app: ASGIApp, keyring: Keyring) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The path the routes see: without the root path a proxy or `--root-path` put in
        # front (else /PREFIX/keys would not be admin-only, and /PREFIX/ui not open).
        needed = required_scope(scope["method"], route_path(scope))
        key = credential(scope["headers"])
        principal: Principal | None = None
        if key is not None:
            if not self.keyring.loaded:
                await _refuse(send, 503, "the API keys could not be read from the model store")
                return
            principal = self.keyring.check(key) if 0 < len(key) <= _MAX_KEY else None
            if principal is None and needed is not None:
                await _refuse(send, 401, "the API key is unknown or revoked")
                return
        if needed is not None:
            if principal is None:
                await _refuse(
                    send,
                    401,
                    f"this route needs an API key with the '{needed}' scope: send "
                    "'Authorization: Bearer KEY' or 'Ocp-Apim-Subscription-Key: KEY'",
                )
                return
            if needed not in principal.scopes:
                await _refuse(
                    send,
                    403,
                    f"the API key '{principal.name}' lacks the '{needed}' scope this route "
                    f"needs (it has: {', '.join(sorted(principal.scopes))})",
                )
                return
        scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if status == 401:
        headers = ((b"www-authenticate", b'Bearer realm="anomaly-api"'),)
    elif status == 503:
        headers = ((b"retry-after", b"1"),)
    await refuse(send, status, detail, headers)
