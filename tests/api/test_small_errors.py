"""Errors stay small whatever the input, and the inputs that used to give 500 give 422
(issue 12, items 4 and 7)."""

from __future__ import annotations

import time

import orjson
import pytest
from fastapi.testclient import TestClient

from anomaly_api.api.body import BIG_BODY_BYTES, BoundedValidationError, _decode
from anomaly_api.api.columnar import FitBody, IntFitBody
from anomaly_api.api.schemas import FitRequest
from anomaly_api.errors import InvalidInput
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


def _big_fit(count: int = 80_000, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "timestamps": list(range(1_691_000_000, 1_691_000_000 + 60 * count, 60)),
        "values": [float(index % 11) for index in range(count)],
        **extra,
    }
    assert len(orjson.dumps(body)) > BIG_BODY_BYTES
    return body


def test_a_large_body_is_decoded_field_by_field() -> None:
    decoded = _decode((IntFitBody, FitBody), FitRequest, orjson.dumps(_big_fit(threshold=2.5)))
    assert isinstance(decoded, IntFitBody) and decoded.threshold == 2.5
    assert len(decoded.values) == 80_000
    iso = _big_fit()
    iso["timestamps"] = ["2023-08-02T18:13:20Z", *iso["timestamps"][1:]]  # type: ignore[index]
    mixed = _decode((IntFitBody, FitBody), FitRequest, orjson.dumps(iso))
    assert type(mixed) is FitBody and mixed.timestamps[0] == "2023-08-02T18:13:20Z"
    big_int = _decode((IntFitBody, FitBody), FitRequest, orjson.dumps(_big_fit(unknown=[1] * 9)))
    assert isinstance(big_int, IntFitBody)  # unknown fields are ignored, as for small bodies


def _refusal(body: bytes) -> tuple[str, str]:
    with pytest.raises((BoundedValidationError, InvalidInput)) as refused:
        _decode((IntFitBody, FitBody), FitRequest, body)
    error = refused.value
    if isinstance(error, InvalidInput):
        return error.field or "", error.message
    assert isinstance(error, BoundedValidationError)
    [first] = error.errors()
    return ".".join(str(part) for part in first["loc"]), first["msg"]


def test_a_large_bodys_faults_are_answered_from_msgspec_naming_the_item() -> None:
    bad = _big_fit()
    bad["values"][123] = "x"  # type: ignore[index]
    assert _refusal(orjson.dumps(bad)) == ("body.values.123", "Expected `float`, got `str`")
    assert _refusal(orjson.dumps({"timestamps": _big_fit()["timestamps"]}))[0] == "body.values"
    params = {f"k{index}": 1 for index in range(10_000)}
    field, message = _refusal(orjson.dumps(_big_fit(params=params)))
    assert field == "params" and "at most 64 KiB" in message
    assert _refusal(orjson.dumps(_big_fit(threshold=-1)))[0] == "body.threshold"
    assert _refusal(orjson.dumps(_big_fit())[:-2] + b"NaN]}")[0] == "body"
    assert _refusal(b"[" + orjson.dumps(_big_fit()) + b"]") == (
        "body",
        "request body must be a JSON object",
    )
    invalid = orjson.dumps(_big_fit()).replace(
        b'{"timestamps"', b'{"detector": "\xff", "timestamps"'
    )
    assert _refusal(invalid) == ("detector", "detector: a string is not valid UTF-8")


def test_a_large_bulk_body_with_a_bad_point_is_a_422(client: TestClient) -> None:
    points: list[dict[str, object]] = [
        {"series_id": "s", "timestamp": index, "value": 1.0} for index in range(30_000)
    ]
    points[777]["value"] = "x"
    body = orjson.dumps(points)
    assert len(body) > BIG_BODY_BYTES
    answer = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "[777].value"


def test_a_single_predict_takes_a_small_body_only(client: TestClient) -> None:
    padding = {f"k{index}": 1 for index in range(10_000)}
    answer = client.post("/predict/s", json={"timestamp": 1, "value": 1, **padding})
    assert answer.status_code == 413 and "64 KiB" in answer.json()["detail"]
