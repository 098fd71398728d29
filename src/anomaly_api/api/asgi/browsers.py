"""Web pages cannot be turned against the service: two checks in front of everything.

A page a user visits may send requests to ``http://127.0.0.1:8000`` (the browser lets
it) or rebind its own host name to 127.0.0.1 (DNS rebinding: then it even reads the
answers). Against both:

* **Host allow-list.** A request must be addressed to a loopback name (``localhost``,
  ``127.0.0.1``, ``[::1]``) or one of ``ANOMALY_ALLOWED_HOSTS``; a rebound name is refused
  with 400. With API keys required and no list configured, any host is accepted (the
  key is the protection).
* **No state change from a simple cross-origin request.** A browser sends a cross-origin
  request without asking first (a CORS preflight) only with a "simple" content type:
  ``text/plain``, ``application/x-www-form-urlencoded`` or ``multipart/form-data``. A
  request that changes something (any method but GET, HEAD and OPTIONS) with one of
  those types and no API key is refused with 415: send JSON
  (``Content-Type: application/json``, or none at all, as scripts do). Requests with a
  key cannot be forged by a page: browsers never add it on their own.

No CORS headers are sent unless ``ANOMALY_CORS_ORIGINS`` lists origins.
"""

from __future__ import annotations

from anomaly_api.api.asgi.answers import refuse
from anomaly_api.api.asgi.auth import ASGIApp, Receive, Scope, Send
from anomaly_api.api.asgi.layer import Layer
from anomaly_api.settings import is_loopback

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIMPLE_TYPES = frozenset(
    {b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data"}
)
_REMEMBERED_HOSTS = 1024
_KEY_HEADERS = frozenset({b"authorization", b"ocp-apim-subscription-key"})


def host_name(host: bytes) -> str:
    """The name in a ``Host`` header, without its port or IPv6 brackets, lower case."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rpartition(":")[0] if text.count(":") == 1 else text


class BrowserGuard(Layer):
    """Refuse rebound host names and simple cross-origin requests that change state."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str], any_host: bool) -> None:
        self.app = app
        self.allowed = frozenset(host.strip().lower() for host in allowed_hosts)
        self.any_host = any_host or "*" in self.allowed
        self._hosts: dict[bytes, bool] = {}

    def _allowed(self, host: bytes) -> bool:
        """Whether requests to ``host`` are served; remembered per ``Host`` header value
        (clients send the same few), since parsing an address costs microseconds on
        every predict."""
        known = self._hosts.get(host)
        if known is None:
            name = host_name(host)
            known = name in self.allowed or is_loopback(name)
            if len(self._hosts) < _REMEMBERED_HOSTS:
                self._hosts[host] = known
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = None
        content_type = None
        keyed = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"content-type":
                content_type = value
            elif name in _KEY_HEADERS:
                keyed = True
        if host is not None and not self.any_host and not self._allowed(host):
            shown = host_name(host)[:100]
            await refuse(
                send,
                400,
                f"requests to host {shown!r} are not accepted: only loopback names and "
                "ANOMALY_ALLOWED_HOSTS are (with API keys off, a web page could "
                "otherwise reach the service by rebinding its own name)",
            )
            return
        if (
            not keyed
            and content_type is not None
            and scope["method"] not in _SAFE_METHODS
            and content_type.partition(b";")[0].strip().lower() in _SIMPLE_TYPES
        ):
            await refuse(
                send,
                415,
                "send the body as JSON (Content-Type: application/json): a request that "
                "changes something is not accepted as text/plain or a form without an API "
                "key, so that no web page can send it from a user's browser",
            )
            return
        await self.app(scope, receive, send)
