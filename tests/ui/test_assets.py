"""The dashboard's files, without a browser: the vendored chart library is the published
one, nothing points off the machine, the pages are open but their data is not."""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.api.ui.routes import STATIC
from anomaly_api.settings import Settings

VENDORED = {
    "vendor/uplot-1.6.32/uPlot.iife.min.js": (
        "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
    ),
    "vendor/uplot-1.6.32/uPlot.min.css": (
        "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
    ),
}


@pytest.mark.parametrize(("name", "digest"), VENDORED.items())
def test_the_vendored_files_are_the_published_ones(name: str, digest: str) -> None:
    assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest
    assert digest in (STATIC / "vendor" / "README.md").read_text()


def test_the_pages_load_only_the_service_s_own_files() -> None:
    for page in ("index.html", "series.html"):
        text = (STATIC / page).read_text()
        sources = re.findall(r'(?:src|href)="([^"]+)"', text)
        assert sources and all(source.startswith("{{base}}/") for source in sources), page
    for script in STATIC.glob("*.js"):
        assert re.search(r"https?://", script.read_text()) is None, script.name


def test_pages_and_assets_are_open_data_is_not_and_the_pages_carry_a_policy(
    tmp_path: object,
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/ui.db", auth="required")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        for path in ("/ui", "/ui/series?id=x"):
            page = client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "connect-src 'self'" in policy
            assert "{{base}}" not in page.text and 'data-base=""' in page.text
        asset = client.get("/ui/assets/vendor/uplot-1.6.32/uPlot.iife.min.js")
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        assert client.get("/ui/assets/ui.js").status_code == 200
        assert client.get("/ui/assets/../../series").status_code in (401, 404)
        assert client.get("/series?stream=true").status_code == 401
        assert client.get("/ui/other").status_code == 401  # only the two pages are open


def test_a_root_path_prefixes_every_address_of_the_pages(tmp_path: object) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/ui.db")
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1", root_path="/anomaly") as client:
        text = client.get("/ui").text
    assert 'data-base="/anomaly"' in text
    assert 'src="/anomaly/ui/assets/ui.js"' in text
