from __future__ import annotations

from pathlib import Path

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


def _series_samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels["series_id"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("anomaly_series_")
        for sample in family.samples
    }


def test_metrics_report_each_active_series_counters_as_its_detail_does(
    tmp_path: Path,
) -> None:
    from anomaly_api.api.app import create_app
    from anomaly_api.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", metrics_series=2)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        # Ids a label must escape: quotes and backslashes cannot be in ids, other letters can.
        ids = ("quiet", "温度:東京", "spiky", "never-scored")
        for series_id in ids:
            assert client.post(f"/fit/{series_id}", json=CONTRACT_FIT).status_code == 200
        for series_id, value in (("quiet", 11), ("温度:東京", 11), ("spiky", 90)):
            point = {"timestamp": 1691000300, "value": value}
            assert client.post(f"/predict/{series_id}", json=point).status_code == 200
        samples = _series_samples(client.get("/metrics").text)
        # The two most recently active (metrics_series=2), as GET /series/{id} says.
        assert {series_id for _, series_id in samples} == {"温度:東京", "spiky"}
        for series_id in ("温度:東京", "spiky"):
            stream = client.get(f"/series/{series_id}").json()["stream"]
            assert samples[("anomaly_series_last_score", series_id)] == stream["last_score"]
            for field in ("anomalies_last_hour", "anomalies_last_day", "incidents_last_day"):
                assert samples[(f"anomaly_series_{field}", series_id)] == stream[field]
            assert samples[("anomaly_series_last_point_timestamp_seconds", series_id)] == 1691000300
        assert samples[("anomaly_series_anomalies_last_hour", "spiky")] == 1
        assert samples[("anomaly_series_incidents_last_day", "spiky")] == 1
    # Another process (here: the next app on the store) holds none of these streams: it
    # reports two the store saved last (one save: any two of them), with their counters.
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as other:
        elsewhere = _series_samples(other.get("/metrics").text)
        reported = {series_id for _, series_id in elsewhere}
        assert len(reported) == 2 and reported <= {"quiet", "温度:東京", "spiky"}
        for series_id in reported:
            stream = other.get(f"/series/{series_id}").json()["stream"]
            assert elsewhere[("anomaly_series_last_score", series_id)] == stream["last_score"]
            hour = elsewhere[("anomaly_series_anomalies_last_hour", series_id)]
            assert hour == stream["anomalies_last_hour"] == (series_id == "spiky")


def test_metrics_can_leave_series_out(tmp_path: Path) -> None:
    from anomaly_api.api.app import create_app
    from anomaly_api.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", metrics_series=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.post("/fit/a", json=CONTRACT_FIT).status_code == 200
        assert client.post("/predict/a", json={"timestamp": 1691000300, "value": 90}).json()
        assert _series_samples(client.get("/metrics").text) == {}
