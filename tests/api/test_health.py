from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import YOUNG_GENERATION_THRESHOLD, create_app
from anomaly_api.errors import StoreUnavailable
from anomaly_api.settings import Settings
from tests.conftest import CONTRACT_FIT


def test_fresh_service_is_healthy_with_empty_windows(client: TestClient) -> None:
    body = client.get("/healthcheck").json()
    assert body["series_trained"] == 0
    assert body["inference_latency_ms"] == {"avg": 0.0, "p95": 0.0, "count": 0}
    assert body["store"] == {"backend": "sqlite", "ok": True, "error": None}
    assert body["uptime_s"] >= 0


def test_store_down_is_503_and_says_so(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store = client.app.state.registry.store  # type: ignore[attr-defined]

    def refuse() -> None:
        raise StoreUnavailable("SQLite store at x failed: disk I/O error")

    monkeypatch.setattr(store, "ping", refuse)
    response = client.get("/healthcheck")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["series_trained"] is None
    # what failed, not where: the file's path stays in the server log
    assert body["store"]["error"].startswith("the model store is unavailable: SQLite store failed")
    assert " at x" not in body["store"]["error"]


def test_store_errors_on_fit_are_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    store = client.app.state.registry.store  # type: ignore[attr-defined]

    def refuse(*args: object) -> None:
        raise StoreUnavailable("SQLite store at x failed: database is locked")

    monkeypatch.setattr(store, "create_version", refuse)
    response = client.post("/fit/s", json=CONTRACT_FIT)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    detail = response.json()["detail"]
    assert "SQLite store failed" in detail and " at x" not in detail


def test_latency_windows_are_bounded(tmp_path: Path) -> None:
    from anomaly_api.api.app import create_app
    from anomaly_api.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/m.db", latency_window=10)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.post("/fit/s", json=CONTRACT_FIT)
        for _ in range(25):
            client.post("/predict/s", json={"timestamp": "1", "value": 1})
        assert client.get("/healthcheck").json()["inference_latency_ms"]["count"] == 10


def test_fifty_concurrent_http_fits_of_one_series(client: TestClient) -> None:
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: client.post("/fit/hot", json=CONTRACT_FIT), range(50)))
    assert all(answer.status_code == 200 for answer in answers)
    assert sorted(int(answer.json()["version"]) for answer in answers) == list(range(1, 51))


def test_the_server_collects_young_objects_less_often_while_it_runs(settings: Settings) -> None:
    """The lifespan raises the young generation's threshold (see
    ``YOUNG_GENERATION_THRESHOLD``) and gives the process its own back on shutdown."""
    before = gc.get_threshold()
    with TestClient(create_app(settings), base_url="http://127.0.0.1"):
        assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


def test_head_healthcheck_answers_the_status_without_a_body(client: TestClient) -> None:
    answer = client.head("/healthcheck")
    assert answer.status_code == 200 and answer.content == b""
