"""Every example of CONTRACT.md, verbatim, through the app."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

FIT_BODY = (
    '{"timestamps": [1691000000, 1691000060, 1691000120, 1691000180, 1691000240],\n'
    ' "values": [10, 11, 9, 12, 15]}'
)
PREDICT_BODY = '{"timestamp": "1691000240", "value": 18}'
JSON = {"Content-Type": "application/json"}


def test_fit_example(client: TestClient) -> None:
    response = client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON)
    assert response.status_code == 200
    body = response.json()
    assert {"series_id": "sensor_1", "version": "1", "points_used": 5}.items() <= body.items()
    assert isinstance(body["version"], str)


def test_versions_are_strings_counting_up(client: TestClient) -> None:
    versions = [
        client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON).json()["version"]
        for _ in range(3)
    ]
    assert versions == ["1", "2", "3"]


def test_predict_example_with_version(client: TestClient) -> None:
    for _ in range(2):
        client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON)
    response = client.post("/predict/sensor_1?version=1", content=PREDICT_BODY, headers=JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["anomaly"] is True
    assert body["model_version"] == "1"
    assert isinstance(body["model_version"], str)


def test_predict_latest_and_explanations(client: TestClient) -> None:
    client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON)
    client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON)
    body = client.post("/predict/sensor_1", content=PREDICT_BODY, headers=JSON).json()
    assert body["model_version"] == "2"
    assert body["expected"] == 11.4
    assert body["lower"] < body["expected"] < body["upper"] < 18
    assert 0.5 < body["score"] <= 1
    assert body["direction"] == "above"
    assert body["threshold"] == 3.0
    assert body["detector"] == "zscore"


def test_timestamp_as_number_and_iso(client: TestClient) -> None:
    client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON)
    for timestamp in (1691000240, "2023-08-02T18:17:20Z"):
        response = client.post("/predict/sensor_1", json={"timestamp": timestamp, "value": 18})
        assert response.status_code == 200
        assert response.json()["timestamp"] == 1691000240


def test_healthcheck_shape(client: TestClient) -> None:
    client.post("/fit/sensor_1", content=FIT_BODY, headers=JSON)
    client.post("/predict/sensor_1", content=PREDICT_BODY, headers=JSON)
    body = client.get("/healthcheck").json()
    assert body["series_trained"] == 1
    for key in ("inference_latency_ms", "training_latency_ms"):
        assert set(body[key]) >= {"avg", "p95"}
        assert all(isinstance(body[key][k], float) for k in ("avg", "p95"))
    assert body["status"] == "ok"


def test_docs_and_schema(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/fit/{series_id}", "/predict/{series_id}", "/healthcheck"} <= set(schema["paths"])
    components = schema["components"]["schemas"]
    for model in ("FitRequest", "PredictRequest", "FitResponse", "PredictResponse"):
        for name, field in components[model]["properties"].items():
            assert field.get("description"), f"{model}.{name} has no description"
    fit = schema["paths"]["/fit/{series_id}"]["post"]
    assert fit["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "FitRequest"
    )
    assert "curl" in fit["description"]


def test_curl_without_a_json_content_type_is_told_to_send_one(client: TestClient) -> None:
    """``curl -d`` sends application/x-www-form-urlencoded unless told otherwise, as a web
    page's form would: without an API key that is refused with a message saying what to
    send (the original service refused it too, with a 422). No Content-Type at all, as
    scripts send, is JSON."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = client.post("/fit/sensor_1", content=FIT_BODY, headers=form)
    assert refused.status_code == 415
    assert "Content-Type: application/json" in refused.json()["detail"]
    assert client.post("/fit/sensor_1", content=FIT_BODY).status_code == 200
    response = client.post("/predict/sensor_1", content=PREDICT_BODY)
    assert response.json()["anomaly"] is True


def test_readme_curl_lines_use_the_contract_paths() -> None:
    """The README's and docs' examples are the contract's; keep them from drifting apart."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    readme = "\n".join(
        path.read_text() for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    )
    bodies = re.findall(r"-d '(\{.*?\})'", readme, flags=re.S)
    assert bodies, "README has no curl examples"
    for body in bodies:
        json.loads(body)
    # Without a key, a body is accepted as JSON or with no Content-Type, not as curl's
    # default form type: every POST in the README says which it sends.
    for line in re.findall(r"curl -X POST[^\n]*", readme):
        assert "Content-Type: application/json" in line or "Authorization" in line, line
