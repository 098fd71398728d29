"""A web page cannot reach the service through the user's browser: rebound host names
are refused, simple cross-origin writes are refused, and no CORS unless configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.app import create_app
from anomaly_api.api.asgi.browsers import host_name
from anomaly_api.settings import Settings
from tests.conftest import CONTRACT_FIT


def app_client(tmp_path: Path, **options: Any) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", **options)
    return TestClient(create_app(settings), base_url="http://127.0.0.1")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tmp_path) as client:
        yield client


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("LOCALHOST", True),
        ("[::1]:8000", True),
        ("app.localhost", True),
        ("127.1.2.3", True),
        ("evil.example", False),
        ("evil.example:8000", False),
        ("10.0.0.5:8000", False),
        ("127.0.0.1.evil.example", False),
    ],
)
def test_with_keys_off_only_loopback_host_names_are_served(
    local: TestClient, host: str, allowed: bool
) -> None:
    answer = local.get("/series", headers={"Host": host})
    if allowed:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400
        assert "not accepted" in answer.json()["detail"]
        fit = local.post("/fit/s", json=CONTRACT_FIT, headers={"Host": host})
        assert fit.status_code == 400  # nothing reached the store
        assert local.get("/series").json()["series"] == []


def test_allowed_hosts_add_names_and_keys_lift_the_rule(tmp_path: Path) -> None:
    with app_client(tmp_path, allowed_hosts=["anomaly.internal"]) as client:
        assert client.get("/series", headers={"Host": "anomaly.internal:8000"}).status_code == 200
        assert client.get("/series", headers={"Host": "other.internal"}).status_code == 400
    with app_client(tmp_path, auth="required") as client:
        # The key protects: any host name reaches the key check.
        assert client.get("/series", headers={"Host": "anomaly.example"}).status_code == 401


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_a_simple_cross_origin_write_is_refused(local: TestClient, content_type: str) -> None:
    body = b'{"timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240], "values": [10, 11, 9, 12, 15]}'
    answer = local.post("/fit/s", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"]
    assert local.get("/series").json()["series"] == []
    predict = local.post(
        "/predict/s",
        content=b'{"timestamp": 1691000300, "value": 1}',
        headers={"Content-Type": content_type},
    )
    assert predict.status_code == 415


def test_json_or_no_content_type_is_accepted(local: TestClient) -> None:
    assert local.post("/fit/s", json=CONTRACT_FIT).status_code == 200
    raw = b'{"timestamp": 1691000300, "value": 11}'
    assert local.post("/predict/s", content=raw).status_code == 200  # no Content-Type
    typed = {"Content-Type": "application/json; charset=utf-8"}
    assert local.post("/predict/s", content=raw, headers=typed).status_code == 200


def test_no_cors_unless_configured(tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://dash.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with app_client(tmp_path) as client:
        answer = client.options("/fit/s", headers=preflight)
        assert answer.status_code >= 400
        assert "access-control-allow-origin" not in answer.headers
        plain = client.get("/series", headers={"Origin": "https://dash.example"})
        assert "access-control-allow-origin" not in plain.headers
    with app_client(tmp_path, cors_origins=["https://dash.example"]) as client:
        answer = client.options("/fit/s", headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "https://dash.example"
        other = client.options("/fit/s", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_host_names_are_read_without_port_or_brackets() -> None:
    assert host_name(b"Example.COM:8000") == "example.com"
    assert host_name(b"[::1]:8000") == "::1"
    assert host_name(b"::1") == "::1"
    assert host_name(b"127.0.0.1") == "127.0.0.1"
