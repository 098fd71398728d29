"""``/docs`` and ``/redoc`` need nothing from the internet: every script, style and icon
they load is served by the service itself."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient


def _loaded(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


def test_the_documentation_pages_load_only_local_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        answer = client.get(page)
        assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
        assert "http://" not in answer.text and "https://" not in answer.text, page
        urls = _loaded(answer.text)
        assert urls, page
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
    assert (
        client.get("/docs-assets/swagger-ui-bundle.js")
        .headers["content-type"]
        .startswith(("application/javascript", "text/javascript"))
    )
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Anomaly Detection API"


def test_the_main_answers_show_real_examples_that_fit_their_schemas(client: TestClient) -> None:
    from anomaly_api.api.routes.history import PointsPage
    from anomaly_api.api.schemas import (
        DeleteResponse,
        ErrorResponse,
        FitResponse,
        HealthResponse,
        PredictResponse,
        SeriesDetail,
        SeriesPage,
    )

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model in (
        FitResponse,
        PredictResponse,
        HealthResponse,
        SeriesPage,
        SeriesDetail,
        PointsPage,
        DeleteResponse,
        ErrorResponse,
    ):
        assert schemas[model.__name__]["examples"]  # shown by /docs
        extra: Any = model.model_config.get("json_schema_extra")
        (example,) = extra["examples"]
        assert model.model_validate(example)  # a real answer, every field in place
