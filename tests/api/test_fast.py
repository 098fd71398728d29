"""The predict fast path answers exactly as the framework route would, or lets it answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.api.fast import FastPredict
from anomaly_api.settings import Settings
from tests.conftest import CONTRACT_FIT


class CountingApi:
    """Wraps the FastAPI app to count the HTTP requests that reach it."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.state = api.state
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.api(scope, receive, send)


def fast_layer(app: object) -> FastPredict:
    """The fast path inside the outer layers (the browser guard, with one worker)."""
    while not isinstance(app, FastPredict):
        app = app.app  # type: ignore[attr-defined]
    return app


@pytest.fixture
def app(settings: Settings) -> FastPredict:
    return fast_layer(create_app(settings))


@pytest.fixture
def fast_client(app: FastPredict) -> Iterator[tuple[TestClient, CountingApi]]:
    with TestClient(app, base_url="http://127.0.0.1") as client:
        counting = CountingApi(app.api)
        app.api = counting  # type: ignore[assignment]
        assert client.post("/fit/s", json=CONTRACT_FIT).status_code == 200
        # The first predict after any commit re-reads "latest" through the framework.
        assert client.post("/predict/s", json={"timestamp": 1, "value": 1}).status_code == 200
        yield client, counting


def test_a_cached_predict_skips_the_framework_and_answers_the_same(
    fast_client: tuple[TestClient, CountingApi],
) -> None:
    client, api = fast_client
    before = api.calls
    fast = client.post("/predict/s?version=1", json={"timestamp": "1691000240", "value": 18})
    assert api.calls == before  # answered in front of the framework
    # %31 is "1": the fast path leaves encoded queries to the framework.
    slow = client.post("/predict/s?version=%31", json={"timestamp": "1691000240", "value": 18})
    assert api.calls == before + 1
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content
    for header in ("content-type", "content-length"):
        assert fast.headers[header] == slow.headers[header]


def test_latest_is_served_fast_and_moves_with_a_new_fit(
    fast_client: tuple[TestClient, CountingApi],
) -> None:
    client, api = fast_client
    assert (
        client.post("/predict/s", json={"timestamp": 1, "value": 1}).json()["model_version"] == "1"
    )
    client.post("/fit/s", json=CONTRACT_FIT)
    assert (
        client.post("/predict/s", json={"timestamp": 1, "value": 1}).json()["model_version"] == "2"
    )
    before = api.calls
    answer = client.post("/predict/s", json={"timestamp": 1, "value": 1}).json()
    assert answer["model_version"] == "2"
    assert api.calls == before


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/predict/s", b'{"timestamp": 1, "value": true}', 422, "value"),
        ("/predict/s", b'{"timestamp": 1, "value": null}', 422, "value"),
        ("/predict/s", b'{"timestamp": 1, "value": "18"}', 422, "value"),
        ("/predict/s", b'{"timestamp": 1}', 422, "value"),
        ("/predict/s", b'{"timestamp": 1, "value": NaN}', 422, "value"),
        ("/predict/s", b'{"timestamp": "soon", "value": 1}', 422, "timestamp"),
        ("/predict/s", b"[1, 2]", 422, "JSON object"),
        ("/predict/s", b"", 422, "empty"),
        ("/predict/s", b"{", 422, "not valid JSON"),
        ("/predict/s?version=0", b'{"timestamp": 1, "value": 1}', 422, "version"),
        ("/predict/s?version=9", b'{"timestamp": 1, "value": 1}', 404, "version 9"),
        ("/predict/nope", b'{"timestamp": 1, "value": 1}', 404, "nope"),
        ("/predict/a b", b'{"timestamp": 1, "value": 1}', 422, "series_id"),
        ("/predict/a/b", b'{"timestamp": 1, "value": 1}', 422, "series_id"),
    ],
)
def test_anything_unusual_is_left_to_the_framework(
    fast_client: tuple[TestClient, CountingApi], path: str, body: bytes, status: int, detail: str
) -> None:
    client, api = fast_client
    before = api.calls
    response = client.post(path, content=body)
    assert api.calls == before + 1
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_a_large_body_is_left_to_the_framework(
    fast_client: tuple[TestClient, CountingApi],
) -> None:
    client, api = fast_client
    before = api.calls
    padded = {"timestamp": 1, "value": 1, "note": "x" * 10_000}
    response = client.post("/predict/s", json=padded)
    assert response.status_code == 200 and api.calls == before + 1


def test_a_model_not_in_memory_is_loaded_by_the_framework_then_served_fast(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.post("/fit/s", json=CONTRACT_FIT)
    outer = create_app(settings)  # a new process: empty cache, same store
    app = fast_layer(outer)
    with TestClient(outer, base_url="http://127.0.0.1") as client:
        counting = CountingApi(app.api)
        app.api = counting  # type: ignore[assignment]
        point = {"timestamp": 1, "value": 1}
        assert client.post("/predict/s?version=1", json=point).status_code == 200
        assert counting.calls == 1  # loaded from the store by the route
        assert client.post("/predict/s?version=1", json=point).status_code == 200
        assert counting.calls == 1  # then served from memory


def test_each_request_is_counted_once_in_the_metrics(
    fast_client: tuple[TestClient, CountingApi],
) -> None:
    client, _ = fast_client

    def predicts(status: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if (
                line.startswith("anomaly_http_request_duration_seconds_count{")
                and 'handler="/predict/{series_id}"' in line
                and f'status="{status}"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    ok, bad = predicts("200"), predicts("422")
    client.post("/predict/s", json={"timestamp": 1, "value": 1})  # fast
    client.post("/predict/s?version=%31", json={"timestamp": 1, "value": 1})  # framework
    client.post("/predict/s", json={"timestamp": 1, "value": True})  # framework, 422
    assert predicts("200") == ok + 2
    assert predicts("422") == bad + 1
