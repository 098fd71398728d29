"""Errors stay small whatever the input, and the inputs that used to give 500 give 422
(issue 12, items 4 and 7)."""

from __future__ import annotations

import time

import orjson
from fastapi.testclient import TestClient

from tests.conftest import CONTRACT_FIT

FIT_START = b'{"timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240], '


def test_a_megabyte_of_bad_values_gets_a_small_422(client: TestClient) -> None:
    count = 200_000
    body = orjson.dumps({"timestamps": list(range(count)), "values": ["x"] * count})
    assert len(body) > 1_000_000
    started = time.perf_counter()
    answer = client.post("/fit/s", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert len(answer.content) < 5_000, len(answer.content)
    assert len(answer.json()["errors"]) <= 10
    assert time.perf_counter() - started < 30  # generous: a shared machine


def test_a_huge_echoed_input_is_cut(client: TestClient) -> None:
    params = {f"unknown_{index}": 1 for index in range(50_000)}
    answer = client.post("/fit/s", json={**CONTRACT_FIT, "params": params})
    assert answer.status_code == 422
    assert len(answer.content) < 5_000, len(answer.content)
    assert "more characters" in answer.json()["detail"]
    long_id = "a" * 60_000
    answer = client.post(f"/predict/{long_id}", json={"timestamp": 1, "value": 1})
    assert 400 <= answer.status_code < 500 and len(answer.content) < 5_000


def test_invalid_utf8_in_a_string_is_a_422(client: TestClient) -> None:
    json_type = {"Content-Type": "application/json"}
    for path in ("/fit/s", "/detect"):
        body = FIT_START + b'"values": [10, 11, 9, 12, 15], "detector": "\xff\xfe"}'
        answer = client.post(path, content=body, headers=json_type)
        assert answer.status_code == 422, (path, answer.text)
    assert client.post("/fit/s", json=CONTRACT_FIT).status_code == 200
    batch = b'{"timestamps": [1691000300], "values": [1], "detector": "\xc3"}'
    answer = client.post("/predict/s/batch", content=batch, headers=json_type)
    assert answer.status_code in (200, 422), answer.text
    bulk = b'[{"series_id": "s\xff", "timestamp": 1691000300, "value": 1}]'
    assert client.post("/predict", content=bulk, headers=json_type).status_code == 422


def test_an_integer_beyond_float_range_is_a_422(client: TestClient) -> None:
    assert client.post("/fit/s", json=CONTRACT_FIT).status_code == 200
    huge = b"9" * 400
    json_type = {"Content-Type": "application/json"}
    for path, body in (
        ("/predict/s", b'{"timestamp": 1691000300, "value": ' + huge + b"}"),
        ("/predict/s", b'{"timestamp": 1691000300, "value": -' + huge + b"}"),
        ("/predict", b'[{"series_id": "s", "timestamp": 1691000300, "value": ' + huge + b"}]"),
        ("/predict/s/batch", b'{"timestamps": [1691000300], "values": [' + huge + b"]}"),
        ("/fit/t", FIT_START + b'"values": [1, 2, 3, 4, ' + huge + b"]}"),
    ):
        answer = client.post(path, content=body, headers=json_type)
        assert answer.status_code == 422, (path, answer.text)
        assert "value" in answer.json()["detail"]


def test_threshold_must_be_a_number_not_a_string_or_a_boolean(client: TestClient) -> None:
    for threshold in (True, "0.5", None):
        body = {**CONTRACT_FIT, "threshold": threshold}
        answer = client.post("/fit/s", json=body)
        if threshold is None:
            assert answer.status_code == 200
        else:
            assert answer.status_code == 422, threshold
            assert "threshold" in answer.json()["detail"]
    assert client.post("/fit/s", json={**CONTRACT_FIT, "threshold": 2}).status_code == 200
