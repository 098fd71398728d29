"""The audit layer: an audit line (:mod:`anomaly_api.audit`) for every request that
changes what is stored or who may enter: fits, deletes and key changes, refused ones
included (a 401 or 403 is who tried).

It sits outside the API-key check, so it sees every attempt, and reads who sent it from
what that check left in the scope.
"""

from __future__ import annotations

from anomaly_api.api.asgi.auth import PRINCIPAL, ASGIApp, Message, Receive, Scope, Send
from anomaly_api.api.asgi.layer import Layer
from anomaly_api.audit import record

_MAX_PATH = 300


def action_of(method: str, path: str) -> str | None:
    """What an audited request does (``fit``, ``delete``, ``key create``,
    ``key revoke``); None for the others."""
    if path == "/keys" or path.startswith("/keys/"):
        if method == "POST":
            return "key create"
        if method == "DELETE":
            return "key revoke"
        return None
    if method == "POST" and path.startswith("/fit/"):
        return "fit"
    if method == "DELETE":
        return "delete"
    return None


class AuditLog(Layer):
    """Write an audit line (:func:`record`) when each audited request is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        action = action_of(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if action is None:
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            principal = scope.get(PRINCIPAL)
            client = scope.get("client")
            record(
                principal.name if principal is not None else None,
                action,
                status or 500,
                client=client[0] if client else None,
                method=scope["method"],
                path=scope["path"][:_MAX_PATH],
            )
