"""Bad input: always a 4xx whose message names the field, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import CONTRACT_FIT

TS = CONTRACT_FIT["timestamps"]
GOOD_POINT = {"timestamp": "1691000240", "value": 18}
JSON = {"Content-Type": "application/json"}

FIT_CASES = [
    # (id, raw body, status, words the message must contain)
    ("nan token", b'{"timestamps": [1,2,3,4,5], "values": [1, 2, NaN, 4, 5]}', 422, "values[2]"),
    (
        "infinity token",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,Infinity]}',
        422,
        "values[4]",
    ),
    (
        "overflow to inf",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,1e999]}',
        422,
        "values[4]",
    ),
    ("null value", b'{"timestamps": [1,2,3,4,5], "values": [1,null,3,4,5]}', 422, "values[1]"),
    ("string value", b'{"timestamps": [1,2,3,4,5], "values": [1,"2",3,4,5]}', 422, "values[1]"),
    ("bool value", b'{"timestamps": [1,2,3,4,5], "values": [1,true,3,4,5]}', 422, "values[1]"),
    ("length mismatch", b'{"timestamps": [1,2,3,4], "values": [1,2,3,4,5]}', 422, "same length"),
    ("empty lists", b'{"timestamps": [], "values": []}', 422, "values is empty"),
    ("too few points", b'{"timestamps": [1,2,3,4], "values": [1,2,3,4]}', 422, "at least 5 points"),
    ("missing values", b'{"timestamps": [1,2,3,4,5]}', 422, "values: Field required"),
    ("values not a list", b'{"timestamps": [1], "values": 5}', 422, "values"),
    (
        "bad timestamp",
        b'{"timestamps": [1,2,"x",4,5], "values": [1,2,3,4,5]}',
        422,
        "timestamps[2]",
    ),
    (
        "huge timestamp",
        b'{"timestamps": [1,2,3,4,99999999999999999999], "values": [1,2,3,4,5]}',
        422,
        "timestamps",
    ),
    ("float timestamp", b'{"timestamps": [1,2,3.5,4,5], "values": [1,2,3,4,5]}', 200, ""),
    ("malformed json", b'{"timestamps": [1,2', 422, "not valid JSON"),
    ("not an object", b"[1, 2, 3]", 422, "must be a JSON object"),
    ("empty body", b"", 422, "request body is empty"),
    ("whitespace body", b"   ", 422, "request body is empty"),
    (
        "bad threshold",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "threshold": 0}',
        422,
        "threshold",
    ),
    (
        "bad direction",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "direction": "up"}',
        422,
        "direction",
    ),
    (
        "unknown detector",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "detector": "magic"}',
        422,
        "valid detectors: adaptive, cusum, hampel, pattern, robust, seasonal, spread, trend, zscore",
    ),
    (
        "unknown param",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "params": {"k": 2}}',
        422,
        "unknown parameter(s) k; valid: threshold, direction",
    ),
    (
        "conflicting threshold",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "threshold": 2, "params": {"threshold": 3}}',
        422,
        "given twice",
    ),
    ("unsorted is sorted", b'{"timestamps": [5,4,3,2,1], "values": [1,2,3,4,5]}', 200, ""),
    ("duplicates kept", b'{"timestamps": [1,1,1,2,2], "values": [1,2,3,4,5]}', 200, ""),
    ("invalid utf8", b'{"timestamps": [1], "values": ["\xff"]}', 422, "not valid JSON"),
    ("deeply nested", b"[" * 100_000, 422, "nested too deeply"),
    (
        "lone surrogate param",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "params": {"\\ud800": 1}}',
        422,
        "unknown parameter",
    ),
    (
        "huge threshold",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "threshold": 1e400}',
        422,
        "threshold",
    ),
    (
        "huge int param",
        b'{"timestamps": [1,2,3,4,5], "values": [1,2,3,4,5], "params": {"threshold": 1'
        + b"0" * 400
        + b"}}",
        422,
        "finite",
    ),
    (
        "huge window",
        b'{"timestamps": [1,2,3,4,5,6,7,8,9,10], "values": [1,2,3,4,5,6,7,8,9,10], "detector": "hampel", "params": {"window": 10000000000000}}',
        422,
        "at most 1000",
    ),
    (
        "adaptive quantile 1",
        b'{"timestamps": [1,2,3,4,5,6,7,8,9,10], "values": [1,2,3,4,5,6,7,8,9,10], "detector": "adaptive", "params": {"quantile": 1}}',
        422,
        "at most 0.9999",
    ),
    (
        "values overflowing the mean",
        b'{"timestamps": [1,2,3,4,5], "values": [1.7e308, 1.7e308, 1.7e308, 1.7e308, 1.6e308]}',
        422,
        "overflows",
    ),
    (
        "values overflowing the spread",
        b'{"timestamps": [1,2,3,4,5,6], "values": [1e308, -1e308, 1e308, -1e308, 1e308, -1e308]}',
        422,
        "overflows",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "words"), FIT_CASES, ids=[c[0] for c in FIT_CASES]
)
def test_fit_bad_bodies(
    client: TestClient, case: str, body: bytes, status: int, words: str
) -> None:
    response = client.post("/fit/s", content=body, headers=JSON)
    assert response.status_code == status, response.text
    if status != 200:
        assert words in response.json()["detail"]


PREDICT_CASES = [
    ("nan value", b'{"timestamp": "1", "value": NaN}', 422, "value"),
    ("null value", b'{"timestamp": "1", "value": null}', 422, "value"),
    ("string value", b'{"timestamp": "1", "value": "high"}', 422, "value"),
    ("missing timestamp", b'{"value": 1}', 422, "timestamp: Field required"),
    ("bad timestamp", b'{"timestamp": "soon", "value": 1}', 422, "timestamp"),
    ("malformed json", b'{"timestamp": ', 422, "not valid JSON"),
    ("empty body", b"", 422, "request body is empty"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "words"), PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES]
)
def test_predict_bad_bodies(
    client: TestClient, case: str, body: bytes, status: int, words: str
) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    response = client.post("/predict/s", content=body, headers=JSON)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("version=abc", 422, "version must be a positive integer"),
        ("version=0", 422, "version must be a positive integer"),
        ("version=-1", 422, "version must be a positive integer"),
        ("version=1.5", 422, "version must be a positive integer"),
        ("version=%C2%B2", 422, "version must be a positive integer"),
        ("version=99999999999999999999999", 422, "version must be a positive integer"),
        ("version=999", 404, "has no version 999 (latest is 1)"),
        ("version=1", 200, ""),
        ("version=latest", 200, ""),
    ],
)
def test_predict_versions(client: TestClient, query: str, status: int, words: str) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    response = client.post(f"/predict/s?{query}", json=GOOD_POINT)
    assert response.status_code == status, response.text
    if words:
        assert words in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/predict/unknown", 404, "series 'unknown' has no trained model"),
        ("/predict/a%2Fb", 422, "contains '/'"),
        ("/predict/a/b", 422, "contains '/'"),
        ("/predict/" + "x" * 10_000, 422, "10000 characters long"),
        ("/predict/a%20b", 422, "contains ' '"),
        ("/predict/%E6%B8%A9%E5%BA%A6", 404, "has no trained model"),
        ("/predict/...", 422, "dots only"),
    ],
)
def test_predict_odd_series_ids(client: TestClient, path: str, status: int, words: str) -> None:
    response = client.post(path, json=GOOD_POINT)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


@pytest.mark.parametrize(
    ("series_id", "status"),
    [("温度", 200), ("température.salon", 200), ("x" * 256, 200), ("x" * 257, 422), ("a b", 422)],
)
def test_fit_odd_series_ids(client: TestClient, series_id: str, status: int) -> None:
    response = client.post(f"/fit/{series_id}", json=CONTRACT_FIT)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["series_id"] == series_id
        assert client.post(f"/predict/{series_id}", json=GOOD_POINT).status_code == 200


def test_unicode_id_round_trips_through_listing(client: TestClient) -> None:
    client.post("/fit/温度", json=CONTRACT_FIT)
    assert client.get("/series").json()["series"][0]["series_id"] == "温度"
    assert client.get("/series/温度").json()["latest_version"] == "1"


def test_oversized_body_is_413(tmp_path: Path) -> None:
    from anomaly_api.api.app import create_app
    from anomaly_api.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path}/m.db", max_body_bytes=2048)
    big = b'{"timestamps": [' + b",".join(b"1691000000" for _ in range(400)) + b'], "values": []}'
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        response = client.post("/fit/s", content=big, headers=JSON)
        assert response.status_code == 413
        assert "ANOMALY_MAX_BODY_BYTES" in response.json()["detail"]

        def chunks() -> Iterator[bytes]:
            yield big[:1000]
            yield big[1000:]

        response = client.post("/fit/s", content=chunks(), headers=JSON)  # chunked, no length
        assert response.status_code == 413
        assert client.post("/fit/s", json=CONTRACT_FIT).status_code == 200


@pytest.mark.parametrize("path", ["/fit/a%0Ab", "/fit/a%00b", "/fit/%0A", "/fit/a%25b"])
def test_control_characters_in_ids_are_named(client: TestClient, path: str) -> None:
    response = client.post(path, json=CONTRACT_FIT)
    assert response.status_code == 422, response.text
    assert "series_id" in response.json()["detail"]
