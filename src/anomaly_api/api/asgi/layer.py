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
