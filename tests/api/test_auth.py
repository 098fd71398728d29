"""API keys and scopes: every route refuses anonymous and wrong-scope requests (the predict
fast path included), keys travel in either header, revocation takes effect within a
second, and the healthcheck shows load balancers nothing internal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.auth import REFRESH_S, digest, new_key
from anomaly_api.settings import Settings
from anomaly_api.storage import open_store
from tests.conftest import CONTRACT_FIT

SCOPED = ("read", "predict", "write", "admin")


def make_keys(database_url: str) -> dict[str, str]:
    """A key per scope, and one holding every scope ("all")."""
    keys = {}
    store = open_store(database_url)
    try:
        for scope in SCOPED:
            keys[scope] = new_key()
            store.create_key(f"only-{scope}", digest(keys[scope]), (scope,))
        keys["all"] = new_key()
        store.create_key("all", digest(keys["all"]), SCOPED)
    finally:
        store.close()
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    url = f"sqlite:///{tmp_path / 'models.db'}"
    keys = make_keys(url)
    with TestClient(
        create_app(Settings(database_url=url, auth="required")), base_url="http://127.0.0.1"
    ) as client:
        fitted = client.post("/fit/s", json=CONTRACT_FIT, headers=bearer(keys["write"]))
        assert fitted.status_code == 200, fitted.text
        yield client, keys, url


PREDICT = {"timestamp": 1691000300, "value": 11}
ROUTES = [
    ("GET", "/series", None, "read"),
    ("GET", "/series/s", None, "read"),
    ("GET", "/series/s/versions/1", None, "read"),
    ("GET", "/plot/s", None, "read"),
    ("GET", "/plot?series_id=s", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/detectors", None, "read"),
    ("POST", "/predict/s", PREDICT, "predict"),
    ("POST", "/predict/s/batch", {"timestamps": [1691000300], "values": [11]}, "predict"),
    ("POST", "/predict", [{"series_id": "s", **PREDICT}], "predict"),
    ("POST", "/detect", CONTRACT_FIT, "predict"),
    ("POST", "/fit/t", CONTRACT_FIT, "write"),
    ("DELETE", "/series/s/versions/1", None, "write"),
    ("DELETE", "/series/s", None, "write"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_every_route_needs_a_key_with_its_scope(
    secured: tuple[TestClient, dict[str, str], str],
    method: str,
    path: str,
    body: object,
    scope: str,
) -> None:
    client, keys, _ = secured
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert f"'{scope}' scope" in anonymous.json()["detail"]
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    for other in SCOPED:
        if other == scope:
            continue
        refused = client.request(method, path, json=body, headers=bearer(keys[other]))
        assert refused.status_code == 403, (other, refused.text)
        assert f"lacks the '{scope}' scope" in refused.json()["detail"]
    allowed = client.request(method, path, json=body, headers=bearer(keys[scope]))
    assert allowed.status_code < 400, allowed.text


def test_the_predict_fast_path_is_covered(
    secured: tuple[TestClient, dict[str, str], str],
) -> None:
    client, keys, _ = secured
    # Warm the cache: later predicts are answered in front of the framework.
    for _ in range(3):
        assert client.post("/predict/s", json=PREDICT, headers=bearer(keys["predict"])).is_success
    assert client.post("/predict/s", json=PREDICT).status_code == 401
    assert client.post("/predict/s", json=PREDICT, headers=bearer(keys["read"])).status_code == 403
    wrong = client.post("/predict/s", json=PREDICT, headers=bearer(new_key()))
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]


def test_keys_travel_in_either_header_and_nothing_else_counts(
    secured: tuple[TestClient, dict[str, str], str],
) -> None:
    client, keys, _ = secured
    azure = client.get("/series", headers={"Ocp-Apim-Subscription-Key": keys["read"]})
    assert azure.status_code == 200
    basic = client.get("/series", headers={"Authorization": f"Basic {keys['read']}"})
    assert basic.status_code == 401
    lowercase = client.get("/series", headers={"authorization": f"bearer {keys['read']}"})
    assert lowercase.status_code == 200
    huge = client.get("/series", headers=bearer("x" * 100_000))
    assert huge.status_code in (401, 431) and len(huge.content) < 1000


def test_the_healthcheck_and_docs_stay_open_without_internal_detail(
    secured: tuple[TestClient, dict[str, str], str],
) -> None:
    client, keys, _ = secured
    anonymous = client.get("/healthcheck")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert client.get("/healthcheck", headers=bearer(keys["predict"])).json() == {"status": "ok"}
    detailed = client.get("/healthcheck", headers=bearer(keys["read"])).json()
    assert detailed["status"] == "ok" and "series_trained" in detailed
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_a_revoked_key_stops_working_within_a_second(
    secured: tuple[TestClient, dict[str, str], str],
) -> None:
    client, keys, url = secured
    assert client.get("/series", headers=bearer(keys["all"])).status_code == 200
    store = open_store(url)
    try:
        assert store.revoke_key("all")
    finally:
        store.close()
    revoked_at = time.monotonic()
    while client.get("/series", headers=bearer(keys["all"])).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0
        time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.0
    # A key created meanwhile works as soon as the keyring reloads.
    store = open_store(url)
    try:
        fresh = new_key()
        store.create_key("fresh", digest(fresh), ("read",))
    finally:
        store.close()
    time.sleep(REFRESH_S * 2.5)
    assert client.get("/series", headers=bearer(fresh)).status_code == 200


def test_auth_defaults_to_off_only_on_loopback() -> None:
    assert not Settings(host="127.0.0.1").auth_required
    assert not Settings(host="::1").auth_required
    assert not Settings(host="localhost").auth_required
    assert Settings(host="0.0.0.0").auth_required
    assert Settings(host="10.1.2.3").auth_required
    assert Settings(host="127.0.0.1", auth="required").auth_required
    assert not Settings(host="0.0.0.0", auth="off").auth_required


def test_without_keys_required_nothing_changes(client: TestClient) -> None:
    assert client.post("/fit/s", json=CONTRACT_FIT).status_code == 200
    assert client.post("/predict/s", json=PREDICT).status_code == 200
    assert "series_trained" in client.get("/healthcheck").json()


def test_two_replicas_on_postgresql_see_a_revocation_within_a_second(
    postgresql_url: str,
) -> None:
    keys = make_keys(postgresql_url)
    settings = Settings(database_url=postgresql_url, auth="required")
    with (
        TestClient(create_app(settings), base_url="http://127.0.0.1") as first,
        TestClient(create_app(settings), base_url="http://127.0.0.1") as second,
    ):
        headers = bearer(keys["all"])
        assert first.post("/fit/p", json=CONTRACT_FIT, headers=headers).status_code == 200
        for replica in (first, second):
            assert replica.post("/predict/p", json=PREDICT, headers=headers).status_code == 200
        assert second.post("/predict/p", json=PREDICT).status_code == 401
        store = open_store(postgresql_url)
        try:
            assert store.revoke_key("all")
        finally:
            store.close()
        revoked_at = time.monotonic()
        for replica in (first, second):
            while replica.post("/predict/p", json=PREDICT, headers=headers).status_code == 200:
                assert time.monotonic() - revoked_at < 1.0
                time.sleep(0.02)
        assert time.monotonic() - revoked_at < 1.0


def test_admin_keys_manage_keys_over_http(
    secured: tuple[TestClient, dict[str, str], str],
) -> None:
    client, keys, _ = secured
    admin = bearer(keys["admin"])
    assert client.get("/keys").status_code == 401
    assert client.get("/keys", headers=bearer(keys["write"])).status_code == 403
    created = client.post("/keys", json={"name": "grafana", "scopes": ["read"]}, headers=admin)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["scopes"] == ["read"] and answer["key"].startswith("adk_")
    listed = client.get("/keys", headers=admin).json()
    assert {item["name"] for item in listed} >= {"grafana", "only-admin"}
    assert all("key" not in item for item in listed)
    time.sleep(REFRESH_S * 2.5)
    assert client.get("/series", headers=bearer(answer["key"])).status_code == 200
    bad = client.post("/keys", json={"name": "x y", "scopes": ["read"]}, headers=admin)
    assert bad.status_code == 422 and "name" in bad.json()["detail"]
    unknown = client.post("/keys", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert unknown.status_code == 422 and "scope" in unknown.json()["detail"]
    taken = client.post("/keys", json={"name": "grafana", "scopes": ["read"]}, headers=admin)
    assert taken.status_code == 422 and "exists" in taken.json()["detail"]
    revoked = client.delete("/keys/grafana", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.delete("/keys/grafana", headers=admin).status_code == 404


def test_keys_over_http_are_off_without_keys_required(client: TestClient) -> None:
    refused = client.post("/keys", json={"name": "sneaky", "scopes": ["admin"]})
    assert refused.status_code == 404 and "anomaly-api keys" in refused.json()["detail"]


def test_a_real_server_with_two_workers_checks_every_request(tmp_path: Path) -> None:
    """``anomaly-api serve --workers 2``: requests about series the other worker owns are
    passed on inside the server; each is checked once, where it comes in."""
    import urllib.request

    from tests.servers import Server

    database = tmp_path / "served.db"
    keys = make_keys(f"sqlite:///{database}")
    server = Server(database, workers=2, env={"ANOMALY_AUTH": "required"})
    try:

        def send(path: str, body: object, key: str | None) -> int:
            headers = {"Content-Type": "application/json"}
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
            request = urllib.request.Request(
                server.url + path, data=orjson.dumps(body), method="POST", headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return int(error.code)

        for number in range(8):  # spread over both workers
            series = f"/fit/w{number}"
            assert send(series, CONTRACT_FIT, None) == 401
            assert send(series, CONTRACT_FIT, keys["predict"]) == 403
            assert send(series, CONTRACT_FIT, keys["write"]) == 200
            for _ in range(2):
                assert send(f"/predict/w{number}", PREDICT, keys["predict"]) == 200
                assert send(f"/predict/w{number}", PREDICT, None) == 401
    finally:
        server.stop()
