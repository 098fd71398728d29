"""``/ui``: a read-only dashboard, two static pages whose scripts read the API.

* ``GET /ui``: the series (searchable by id) with their last score and recent anomaly
  and incident counts (``GET /series?stream=true``);
* ``GET /ui/series?id=...``: one series' scored history as an interactive chart (zoom,
  hover for value, score and band; anomalies and incidents marked), its anomalies and
  its versions (``GET /series/{id}``, ``GET /series/{id}/points``).

Every file comes from this package (``static/``; the chart library, uPlot, is vendored
unchanged: ``static/vendor/README.md``), so the dashboard works without internet, and
nothing is built. The pages carry no data and are open like ``/docs``; the data comes
from API calls that send the key the user gives (kept in the tab's session storage) and
need the ``read`` scope. Series ids reach the page only as text (``textContent``) and
in URLs only encoded; a Content-Security-Policy allows scripts, styles and requests from
the service alone, so even a slip could not run markup an id holds.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = "/ui/assets"
PAGES = ("/ui", "/ui/series")
"""The dashboard's pages, open to anyone (no data in them), as ``/docs`` is."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@cache
def _template(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _page(request: Request, name: str) -> HTMLResponse:
    base = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
    body = _template(name).replace("{{base}}", base)
    return HTMLResponse(body, headers=SECURITY_HEADERS)


@router.get("/ui")
async def series_list(request: Request) -> HTMLResponse:
    return _page(request, "index.html")


@router.get("/ui/series")
async def series_page(request: Request) -> HTMLResponse:
    return _page(request, "series.html")


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages and assets from ``app``."""
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="ui-assets")
