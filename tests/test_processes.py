"""Guarantees that only real server processes can show: shared files, kill -9, workers."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CONTRACT_FIT
from tests.servers import Server, call

pytestmark = pytest.mark.slow
POINT = {"timestamp": "1691000240", "value": 18}


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_fit_on_one_process_predict_latest_on_another(
    tmp_path: Path, servers: list[Server]
) -> None:
    database = tmp_path / "shared.db"
    first, second = Server(database), Server(database)
    servers += [first, second]
    assert call(first.url + "/fit/sensor_1", "POST", CONTRACT_FIT)[0] == 200
    assert call(first.url + "/fit/other", "POST", CONTRACT_FIT)[0] == 200
    status, body = call(second.url + "/predict/sensor_1", "POST", POINT)
    assert (status, body["model_version"]) == (200, "1")
    latest_before = 1
    status, fitted = call(first.url + "/fit/sensor_1", "POST", CONTRACT_FIT)
    assert status == 200
    # The second process has the older version cached; it must still answer with the new one.
    status, body = call(second.url + "/predict/sensor_1", "POST", POINT)
    assert body["model_version"] == fitted["version"] == str(latest_before + 1)
    assert call(second.url + "/healthcheck")[1]["series_trained"] == 2


def test_concurrent_fits_across_processes_number_without_gaps(
    tmp_path: Path, servers: list[Server]
) -> None:
    database = tmp_path / "shared.db"
    servers += [Server(database), Server(database)]
    urls = [servers[index % 2].url + "/fit/hot" for index in range(40)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda url: call(url, "POST", CONTRACT_FIT), urls))
    assert all(status == 200 for status, _ in answers)
    assert sorted(int(body["version"]) for _, body in answers) == list(range(1, 41))
    detail = call(servers[1].url + "/series/hot")[1]
    assert [v["version"] for v in detail["versions"]] == [str(n) for n in range(1, 41)]


def test_acknowledged_fits_survive_kill_9(tmp_path: Path, servers: list[Server]) -> None:
    database = tmp_path / "models.db"
    server = Server(database)
    acknowledged = [call(server.url + "/fit/sensor_1", "POST", CONTRACT_FIT) for _ in range(5)]
    assert [body["version"] for _, body in acknowledged] == ["1", "2", "3", "4", "5"]
    server.kill()
    restarted = Server(database)
    servers.append(restarted)
    detail = call(restarted.url + "/series/sensor_1")[1]
    assert detail["latest_version"] == "5"
    status, body = call(restarted.url + "/predict/sensor_1?version=3", "POST", POINT)
    assert (status, body["model_version"], body["anomaly"]) == (200, "3", True)
    assert call(restarted.url + "/fit/sensor_1", "POST", CONTRACT_FIT)[1]["version"] == "6"


def test_workers_share_versions_and_health(tmp_path: Path, servers: list[Server]) -> None:
    server = Server(tmp_path / "models.db", workers=2)
    servers.append(server)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(lambda _: call(server.url + "/fit/w", "POST", CONTRACT_FIT), range(20))
        )
    assert sorted(int(body["version"]) for _, body in answers) == list(range(1, 21))
    for _ in range(10):  # whichever worker answers, latest is 20
        assert call(server.url + "/predict/w", "POST", POINT)[1]["model_version"] == "20"
    assert call(server.url + "/healthcheck")[1]["series_trained"] == 1


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def scrape(server: Server) -> str:
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
        text: str = response.read().decode()
        return text


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for ``check`` (a worker starting; a count recorded just after its answer)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.05)


def test_workers_metrics_and_health_describe_the_whole_server(
    tmp_path: Path, servers: list[Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where serve makes its run directory
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    server = Server(tmp_path / "models.db", workers=2)
    servers.append(server)
    eventually(lambda: call(server.url + "/healthcheck")[1]["workers"] == 2)
    (run_dir,) = tmp_path.glob("anomaly-api-run-*")
    fits, predicts = 12, 30
    with ThreadPoolExecutor(max_workers=10) as pool:
        fitted = list(
            pool.map(
                lambda i: call(f"{server.url}/fit/s{i % 3}", "POST", CONTRACT_FIT), range(fits)
            )
        )
        predicted = list(
            pool.map(
                lambda i: call(f"{server.url}/predict/s{i % 3}", "POST", POINT), range(predicts)
            )
        )
    assert all(status == 200 for status, _ in fitted + predicted)
    assert all(body["anomaly"] for _, body in predicted)
    # Whichever worker answers, it describes both: ask each question several times.
    for _ in range(10):
        health = call(server.url + "/healthcheck")[1]
        assert (health["workers"], health["series_trained"]) == (2, 3)
        assert health["training_latency_ms"]["count"] == fits
        assert health["inference_latency_ms"]["count"] == predicts
        assert health["models_cached"] >= 3
    # Fits and scores are counted before the answer; a request's own duration just after.
    requests = "anomaly_http_request_duration_seconds_count"
    predict_route = {"handler": "/predict/{series_id}", "status": "200"}
    eventually(lambda: metric(scrape(server), requests, **predict_route) == predicts)
    # Each worker writes its tally within a second of its last count: the worker that
    # fitted but owns no predicted series may write a little after the other.
    eventually(lambda: metric(scrape(server), "anomaly_fits_total", detector="zscore") == fits)
    eventually(
        lambda: metric(scrape(server), requests, handler="/fit/{series_id}", status="200") == fits
    )
    for _ in range(10):
        text = scrape(server)
        assert metric(text, "anomaly_fits_total", detector="zscore") == fits
        assert metric(text, "anomaly_points_scored_total", detector="zscore") == predicts
        assert metric(text, "anomaly_anomalies_flagged_total", detector="zscore") == predicts
        assert metric(text, requests, handler="/fit/{series_id}", status="200") == fits
        assert metric(text, requests, **predict_route) == predicts
        assert metric(text, "anomaly_model_cache_size") == health["models_cached"]
        assert "/predict/s0" not in text  # labels are route templates, not paths
    assert len(list((run_dir / "health").glob("worker-*.stats"))) == 2
    server.stop()
    assert not run_dir.exists()  # serve removes the run directory it made


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_removes_the_run_directory(tmp_path: Path, workers: int) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = Server(tmp_path / "m.db", workers=workers, env={"TMPDIR": str(scratch)})
    try:
        assert len(list(scratch.glob("anomaly-api-run-*"))) == 1
    finally:
        server.stop()  # SIGTERM, as docker stop and systemd send
    assert list(scratch.glob("anomaly-api-run-*")) == []
