from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CONTRACT_FIT


def test_metrics_answers_prometheus_text(client: TestClient) -> None:
    client.post("/fit/sensor_1", json=CONTRACT_FIT)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"anomaly_http_request_duration_seconds", "anomaly_fits"} <= names


def test_metrics_counts_its_own_requests(client: TestClient) -> None:
    def served() -> float:
        text = client.get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "anomaly_http_request_duration_seconds_count"
            and sample.labels.get("handler") == "/metrics"
        )

    first = served()
    assert served() == first + 1


def test_metrics_is_documented(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/metrics"]["get"]
    assert "Prometheus" in operation["summary"]
    assert "text/plain" in operation["responses"]["200"]["content"]


def test_healthcheck_without_run_dir_counts_one_worker(client: TestClient) -> None:
    client.post("/fit/sensor_1", json=CONTRACT_FIT)
    body = client.get("/healthcheck").json()
    assert (body["workers"], body["models_cached"]) == (1, 1)
    assert body["training_latency_ms"]["count"] == 1
