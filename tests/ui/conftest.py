"""A headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``make test``) driven with selenium, for the dashboard and the API docs.

The browser starts with every request that is not to this machine sent to a proxy that
does not exist (``--proxy-server``; Chromium never proxies loopback), so a page that
needs the internet fails here, and the performance log says which addresses a page
asked for. Screenshots go to ``test-artifacts/`` (or ``$ANOMALY_TEST_ARTIFACTS``).
Without the browser the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from tests.servers import Server, cli_command

ROOT = Path(__file__).resolve().parents[2]
CUT_OFF = "http://127.0.0.1:9"
"""Where everything not on this machine is sent: nothing listens there."""


def _browser_paths() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("ANOMALY_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    paths = _browser_paths()
    if paths is None:
        message = "chromium and chromedriver are not installed (make test installs them as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    chromium, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--proxy-server={CUT_OFF}",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _log(driver: webdriver.Chrome, kind: str) -> list[dict[str, Any]]:
    """The browser's ``kind`` log since the last read (selenium leaves it untyped)."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def open_page(driver: webdriver.Chrome, url: str, ready: str, timeout: float = 15) -> None:
    """Load ``url`` (logs of earlier pages dropped) and wait until the script ``ready``
    returns something truthy."""
    _log(driver, "browser")
    _log(driver, "performance")
    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(ready))


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [entry for entry in _log(driver, "browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every address the page asked for since it was opened (the performance log)."""
    urls = []
    for entry in _log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def only_local(driver: webdriver.Chrome, server: Server, refused: str = "") -> list[str]:
    """The addresses the page asked for, asserting that all are the service's but
    ``refused`` (one the page's Content-Security-Policy stopped in the browser)."""
    urls = requested_urls(driver)
    assert urls, "the performance log recorded no request"
    foreign = [url for url in urls if not url.startswith((server.url, "data:", "blob:"))]
    assert [url for url in foreign if url != refused] == []
    return urls


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``anomaly-api serve`` with its own SQLite store."""
    served = Server(tmp_path_factory.mktemp("ui") / "store.db")
    try:
        yield served
    finally:
        served.stop()


def create_key(database: Path, name: str, scopes: str) -> str:
    """An API key made by the CLI (its last line of output)."""
    done = subprocess.run(
        [*cli_command(), "keys", "create", "--name", name, "--scopes", scopes,
         "--database-url", f"sqlite:///{database}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]
