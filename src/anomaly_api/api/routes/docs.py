"""``/docs`` (Swagger UI) and ``/redoc``, served with the service's own copies of their
scripts and styles, so the API documentation works on a machine without internet (FastAPI's
defaults load them from a CDN: blank pages offline). The files come from the
``fastapi-offline`` package (Swagger UI and ReDoc as published, pinned in
``pyproject.toml``), served under ``/docs-assets/``."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
ASSET_DIRECTORY = Path(fastapi_offline.__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    base = _base(request)
    return get_swagger_ui_html(
        openapi_url=f"{base}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{base}/docs/oauth2-redirect",
        swagger_js_url=f"{base}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{base}{ASSETS}/favicon.png",
        # No badge from validator.swagger.io: the page asks nothing of the internet.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


REDOC_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; base-uri 'none'; frame-ancestors 'none'"
)
"""ReDoc's page may load from the service only: its sidebar's "API docs by Redocly" logo,
which ReDoc always asks of ``cdn.redoc.ly`` (and hides when it fails), is refused by the
browser instead of telling a third party who reads these docs; it injects styles and
runs its search in a ``blob:`` worker."""


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    base = _base(request)
    page = get_redoc_html(
        openapi_url=f"{base}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{base}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{base}{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = REDOC_POLICY
    return page


def install(app: FastAPI) -> None:
    """Serve the documentation pages and their assets from ``app``."""
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIRECTORY), name="docs-assets")
