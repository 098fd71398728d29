"""``/docs`` and ``/redoc`` render in a headless Chromium that cannot reach anything but
this machine (see conftest): Swagger UI lists the operations, ReDoc shows them, and
every file either page asked for came from the service."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.servers import Server
from tests.ui.conftest import console_errors, only_local, open_page

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_swagger_ui_renders_with_the_network_cut_off(
    browser: webdriver.Chrome, server: Server, artifacts: Path
) -> None:
    open_page(
        browser,
        f"{server.url}/docs",
        "return document.querySelectorAll('.swagger-ui .opblock').length > 10",
    )
    urls = only_local(browser, server)
    assert any(url.endswith("/docs-assets/swagger-ui-bundle.js") for url in urls)
    assert any(url.endswith("/openapi.json") for url in urls)
    paths = [
        element.text for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    ]
    assert "/fit/{series_id}" in paths
    assert "/series/{series_id}/points" in paths
    assert console_errors(browser) == []
    browser.save_screenshot(str(artifacts / "docs-swagger-offline.png"))


def test_redoc_renders_with_the_network_cut_off(
    browser: webdriver.Chrome, server: Server, artifacts: Path
) -> None:
    open_page(
        browser,
        f"{server.url}/redoc",
        "return document.body.innerText.includes('/predict/{series_id}')",
        timeout=30,
    )
    urls = only_local(browser, server, refused=REDOC_LOGO)
    assert any(url.endswith("/docs-assets/redoc.standalone.js") for url in urls)
    assert "Anomaly" in browser.find_element(By.TAG_NAME, "h1").text
    # ReDoc always asks cdn.redoc.ly for its sidebar logo; the page's policy refuses it
    # (no request leaves the machine), which the console reports: the only error.
    errors = [error["message"] for error in console_errors(browser)]
    assert [e for e in errors if REDOC_LOGO not in e] == []
    assert all("Content Security Policy" in e for e in errors)
    browser.save_screenshot(str(artifacts / "docs-redoc-offline.png"))
