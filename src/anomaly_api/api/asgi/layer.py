"""The base of this package's ASGI layers: each wraps ``app`` and passes the
application's ``state`` through, so whoever holds the outermost layer (the server's
lifespan, the tests) reaches the registry and settings as on the FastAPI app itself."""

from __future__ import annotations

from typing import Any


class Layer:
    """An ASGI layer around ``app``."""

    app: Any

    @property
    def state(self) -> Any:
        """The application's state (registry, settings), as the layers inside give it."""
        return self.app.state


def route_path(scope: Any) -> str:
    """The request's path as the routes match it: without the root path that a proxy or
    ``uvicorn --root-path`` put in front (Starlette's own rule, ``get_route_path``).
    Layers that decide by path (keys, quotas, heavy work) must read this, or
    ``/PREFIX/keys`` would not be the admin-only ``/keys``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path
