"""``POST /predict/{series_id}/batch`` and ``POST /detect``."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from anomaly_api.detectors import Series, ZScoreDetector
from anomaly_api.timestamps import parse_timestamp
from tests.conftest import CONTRACT_FIT

STAMPS: list[int | float | str] = [1691000300, "1691000360", "2023-08-02T18:27:00Z", 1691000480.9]
VALUES: list[float] = [12, 80.0, -50, 11.5]
POINTS = {"timestamps": STAMPS, "values": VALUES}


def test_a_batch_is_scored_as_the_stream_that_continues_the_training_data(
    client: TestClient,
) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    response = client.post("/predict/s/batch?version=1", json=POINTS)
    assert response.status_code == 200
    batch = response.json()
    assert batch["series_id"] == "s" and batch["model_version"] == "1"
    assert batch["detector"] == "zscore" and batch["count"] == 4
    detector = ZScoreDetector().fit(
        Series.from_arrays(CONTRACT_FIT["timestamps"], CONTRACT_FIT["values"])
    )
    context = detector.initial_context()
    for index, (stamp, value) in enumerate(zip(STAMPS, VALUES, strict=True)):
        point = detector.observe_one(context, float(parse_timestamp(stamp)), value)
        assert batch["anomaly"][index] == point.anomaly
        assert batch["score"][index] == point.score
        assert batch["expected"][index] == point.expected
        assert (batch["lower"][index], batch["upper"][index]) == (point.lower, point.upper)
    assert batch["anomaly"] == [False, True, True, False]


def test_batch_uses_the_latest_version_by_default(client: TestClient) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    client.post("/fit/s", json={**CONTRACT_FIT, "direction": "upper"})
    batch = client.post("/predict/s/batch", json=POINTS).json()
    assert batch["model_version"] == "2"
    assert batch["lower"] == [None] * 4  # the lower side is not watched
    assert batch["anomaly"] == [False, True, False, False]


def test_batch_of_many_points_keeps_their_order(client: TestClient) -> None:
    client.post("/fit/s", json={**CONTRACT_FIT, "detector": "robust"})
    values = np.linspace(-100, 100, 50_000)
    body = {"timestamps": list(range(1691001000, 1691051000))[::-1], "values": values.tolist()}
    response = client.post("/predict/s/batch", json=body)
    # Sent in parts, with the length announced up front.
    assert int(response.headers["content-length"]) == len(response.content)
    assert "transfer-encoding" not in response.headers
    batch = response.json()
    assert batch["count"] == 50_000
    scores = np.array(batch["score"])
    middle = int(np.argmin(np.abs(values - 11.0)))  # the training median
    assert scores[middle] == scores.min() and scores[0] > 0.99 and scores[-1] > 0.99


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/predict/nope/batch", POINTS, 404, "nope"),
        ("/predict/s/batch?version=7", POINTS, 404, "version 7"),
        ("/predict/s/batch?version=x", POINTS, 422, "version"),
        ("/predict/a%20b/batch", POINTS, 422, "series_id"),
        ("/predict/s/batch", {"timestamps": [1, 2], "values": [1.0]}, 422, "timestamps"),
        ("/predict/s/batch", {"timestamps": [1], "values": [True]}, 422, "values"),
        ("/predict/s/batch", {"timestamps": [1], "values": [None]}, 422, "values"),
        ("/predict/s/batch", {"timestamps": [1], "values": ["1"]}, 422, "values"),
        ("/predict/s/batch", {"timestamps": ["later"], "values": [1]}, 422, "timestamps[0]"),
        ("/predict/s/batch", {"values": [1]}, 422, "timestamps"),
        ("/predict/s/batch", [1, 2], 422, "JSON object"),
    ],
)
def test_batch_bad_input(
    client: TestClient, path: str, body: object, status: int, detail: str
) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_batch_rejects_non_finite_tokens_naming_the_item(client: TestClient) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    response = client.post(
        "/predict/s/batch", content=b'{"timestamps": [1, 2], "values": [1, NaN]}'
    )
    assert response.status_code == 422
    assert "values[1]" in response.json()["detail"]


def test_detect_fits_and_scores_without_storing(client: TestClient) -> None:
    body = {**CONTRACT_FIT, "values": [10, 11, 9, 12, 40], "detector": "robust"}
    response = client.post("/detect", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["detector"] == "robust" and answer["params"]["threshold"] == 1.5
    assert answer["count"] == 5 and answer["anomaly"] == [False, False, False, False, True]
    assert client.get("/series").json()["series"] == []
    assert client.get("/healthcheck").json()["series_trained"] == 0


def test_detect_answers_in_the_order_points_were_given(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    stamps = 1691000000 + 60 * np.arange(300)
    values = rng.normal(0, 1, 300)
    values[123] = 30.0
    ordered = client.post(
        "/detect",
        json={"timestamps": stamps.tolist(), "values": values.tolist(), "detector": "hampel"},
    ).json()
    shuffle = rng.permutation(300)
    shuffled = client.post(
        "/detect",
        json={
            "timestamps": stamps[shuffle].tolist(),
            "values": values[shuffle].tolist(),
            "detector": "hampel",
        },
    ).json()
    for field in ("anomaly", "score", "expected"):
        assert np.array(shuffled[field]).tolist() == np.array(ordered[field])[shuffle].tolist()
    assert ordered["anomaly"][123] is True


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({**CONTRACT_FIT, "detector": "magic"}, "valid detectors: adaptive"),
        ({**CONTRACT_FIT, "params": {"threshold": -1}}, "threshold"),
        ({**CONTRACT_FIT, "threshold": 0}, "threshold"),
        ({"timestamps": [1, 2], "values": [1, 2]}, "at least 5 points"),
    ],
)
def test_detect_bad_input(client: TestClient, body: object, detail: str) -> None:
    response = client.post("/detect", json=body)
    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_fit_reads_large_bodies_and_explains_bad_ones_as_before(client: TestClient) -> None:
    n = 200_000
    body = {"timestamps": list(range(1, n + 1)), "values": np.sin(np.arange(n)).tolist()}
    assert client.post("/fit/big", json=body).json()["points_used"] == n
    response = client.post(
        "/fit/big", json={"timestamps": [1, 2, 3, 4, 5], "values": [1, 2, 3, 4, True]}
    )
    assert response.status_code == 422 and "values" in response.json()["detail"]
    huge = client.post("/fit/big", json={"timestamps": [10**30] * 5, "values": [1, 2, 3, 4, 5]})
    assert huge.status_code == 422 and "timestamps" in huge.json()["detail"]


def test_the_new_endpoints_are_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/predict/{series_id}/batch" in schema["paths"]
    assert "/detect" in schema["paths"]
    for name in ("BatchRequest", "DetectRequest", "BatchResponse", "DetectResponse"):
        assert name in schema["components"]["schemas"]


def test_columns_picks_the_arrays_returned(client: TestClient) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    lean = client.post("/predict/s/batch?columns=score,anomaly&observe=false", json=POINTS).json()
    assert set(lean) == {
        *("series_id", "model_version", "detector", "count", "anomaly", "score"),
        *("observe", "points_observed", "not_observed", "versions"),
    }
    full = client.post("/predict/s/batch?observe=false", json=POINTS).json()
    assert lean["score"] == full["score"] and lean["anomaly"] == full["anomaly"]
    detected = client.post("/detect?columns=anomaly", json=CONTRACT_FIT).json()
    assert "anomaly" in detected and "score" not in detected
    bad = client.post("/predict/s/batch?columns=score,why", json=POINTS)
    assert bad.status_code == 422 and "columns: unknown column(s) why" in bad.json()["detail"]


DEEP = "[" * 1000 + "]" * 1000  # msgspec gives up on this; the JSON parsers do not
DEEPER = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        (
            "/fit/s",
            '{"timestamps": [1, 2, 3, 4, 5], "values": [1, 2, 3, 4, 1' + "0" * 400 + "]}",
            "values",
        ),
        ("/predict/s/batch", '{"timestamps": [1], "values": [1' + "0" * 400 + "]}", "values"),
        (
            "/detect",
            '{"timestamps": [1, 2, 3, 4, 5], "values": [1, 2, 3, 4, 1' + "0" * 400 + "]}",
            "values",
        ),
        ("/fit/s", '{"timestamps": [1], "values": [1], "x": ' + DEEP + "}", "at least 5 points"),
        (
            "/detect",
            '{"timestamps": [1], "values": [1], "params": {"y": ' + DEEP + "}}",
            "unknown parameter",
        ),
        (
            "/predict/s/batch",
            '{"timestamps": ["' + "1" * 5000 + '"], "values": [1]}',
            "timestamps[0]",
        ),
    ],
)
def test_huge_numbers_and_deep_nesting_are_422s(
    client: TestClient, path: str, body: str, detail: str
) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    response = client.post(path, content=body.encode())
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    # msgspec's limit is below the JSON parsers': such a body is read, extra field ignored.
    deep = client.post(
        "/predict/s/batch",
        content=('{"timestamps": [1], "values": [1], "x": ' + DEEP + "}").encode(),
    )
    assert deep.status_code == 200


def test_negative_zero_survives_a_constant_looking_column() -> None:
    from anomaly_api.api.columnar import _column_parts

    column = np.array([0.0, -0.0, 0.0])
    assert b"".join(_column_parts(column)) == b"[0.0,-0.0,0.0]"


@pytest.mark.parametrize("path", ["/fit/s", "/predict/s/batch", "/detect"])
def test_extreme_nesting_is_never_a_server_error(client: TestClient, path: str) -> None:
    client.post("/fit/s", json=CONTRACT_FIT)
    body = '{"timestamps": [1, 2, 3, 4, 5], "values": [1, 2, 3, 4, 5], "x": ' + DEEPER + "}"
    response = client.post(path, content=body.encode())
    # Whether a parser reads this (Python 3.13's json does) or refuses it (3.11's says it
    # is nested too deeply), the answer is the usual one, not a 500.
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert "nested too deeply" in response.json()["detail"]
