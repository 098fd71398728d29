"""The metrics module and what the registry and the HTTP layer count with it.

The test process runs prometheus_client in its single-process mode and shares one
default registry between all tests, so these tests compare counts before and after.
Multiprocess mode is exercised in child processes (and in tests/test_processes.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api import metrics
from anomaly_api.api.app import create_app
from anomaly_api.registry import ModelRegistry
from anomaly_api.settings import Settings
from anomaly_api.storage import open_store
from tests.conftest import CONTRACT_FIT

TIMESTAMPS = [1691000000, 1691000060, 1691000120, 1691000180, 1691000240]
VALUES = [10.0, 11.0, 9.0, 12.0, 15.0]
REQUESTS = "anomaly_http_request_duration_seconds_count"


def value(name: str, body: bytes | None = None, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    text = (body if body is not None else metrics.render()[0]).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    opened = ModelRegistry(open_store(f"sqlite:///{tmp_path / 'm.db'}"))
    yield opened
    opened.close()


def test_fits_scores_and_anomalies_are_counted_per_detector(client: TestClient) -> None:
    before = {
        name: value(name, detector="robust")
        for name in (
            "anomaly_fits_total",
            "anomaly_points_scored_total",
            "anomaly_anomalies_flagged_total",
        )
    }
    assert client.post("/fit/m", json={**CONTRACT_FIT, "detector": "robust"}).status_code == 200
    for point in (100, 11, -100):
        client.post("/predict/m", json={"timestamp": "1691000300", "value": point})
    assert value("anomaly_fits_total", detector="robust") == before["anomaly_fits_total"] + 1
    assert (
        value("anomaly_points_scored_total", detector="robust")
        == before["anomaly_points_scored_total"] + 3
    )
    assert (
        value("anomaly_anomalies_flagged_total", detector="robust")
        == before["anomaly_anomalies_flagged_total"] + 2
    )


def test_requests_are_labelled_by_route_template(client: TestClient) -> None:
    fits = value(REQUESTS, handler="/fit/{series_id}", method="POST", status="200")
    missing = value(REQUESTS, handler="/predict/{series_id}", method="POST", status="404")
    versions = value(REQUESTS, handler="/series/{series_id}/versions/{version}", status="200")
    client.post("/fit/labelled", json=CONTRACT_FIT)
    for index in range(5):
        answer = client.post(f"/predict/never_seen_{index}", json={"timestamp": "1", "value": 1})
        assert answer.status_code == 404
    assert client.get("/series/labelled/versions/1").status_code == 200
    body = metrics.render()[0]
    assert value(REQUESTS, body, handler="/fit/{series_id}", method="POST", status="200") == (
        fits + 1
    )
    assert value(REQUESTS, body, handler="/predict/{series_id}", method="POST", status="404") == (
        missing + 5
    )
    assert value(
        REQUESTS, body, handler="/series/{series_id}/versions/{version}", status="200"
    ) == (versions + 1)
    # One time series per route, however many series ids clients send.
    assert b"never_seen" not in body
    assert b"labelled" not in body


def test_unmatched_paths_and_odd_methods_share_bounded_labels(client: TestClient) -> None:
    before = value(REQUESTS, handler="other", method="GET", status="404")
    for index in range(3):
        assert client.get(f"/no/such/path/{index}").status_code == 404
    assert value(REQUESTS, handler="other", method="GET", status="404") == before + 3
    odd = value(REQUESTS, handler="other", method="OTHER", status="405")
    metrics.observe_request("other", "BREW", 405, 0.001)
    assert value(REQUESTS, handler="other", method="OTHER", status="405") == odd + 1
    assert b"BREW" not in metrics.render()[0]


def test_a_body_refused_before_routing_is_counted(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", max_body_bytes=1024)
    before = value(REQUESTS, handler="other", method="POST", status="413")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert client.post("/fit/s", content=b"x" * 2048).status_code == 413
    assert value(REQUESTS, handler="other", method="POST", status="413") == before + 1


def test_latency_histogram_buckets_reach_sub_millisecond(client: TestClient) -> None:
    client.get("/healthcheck")
    body = metrics.render()[0]
    bucket = value(
        "anomaly_http_request_duration_seconds_bucket", body, handler="/healthcheck", le="0.0005"
    )
    total = value(REQUESTS, body, handler="/healthcheck")
    assert 0 <= bucket <= total
    assert total >= 1


def test_cache_hits_misses_and_size(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    fitter = ModelRegistry(open_store(database))
    reader = ModelRegistry(open_store(database))
    try:
        fitter.fit("s", TIMESTAMPS, VALUES)
        assert value("anomaly_model_cache_size") == 1  # the fit put its model in the cache
        hits, misses = (
            value("anomaly_model_cache_hits_total"),
            value("anomaly_model_cache_misses_total"),
        )
        fitter.predict("s", 11.0, 1691000300)  # a hit: the fit cached its model
        assert fitter.predict_cached("s", 11.0, 1691000300) is not None  # a hit
        assert reader.predict_cached("s", 11.0, 1691000300) is None  # not counted: see below
        reader.predict("s", 11.0, 1691000300)  # a miss, which loads the model
        reader.predict("s", 11.0, 1691000300)  # a hit
        assert value("anomaly_model_cache_hits_total") == hits + 3
        assert value("anomaly_model_cache_misses_total") == misses + 1
        assert value("anomaly_model_cache_size") == 1  # this process's latest report
        fitter.fit("t", TIMESTAMPS, VALUES)
        assert value("anomaly_model_cache_size") == 2
    finally:
        fitter.close()
        reader.close()


def test_batch_scoring_counts_every_point(registry: ModelRegistry) -> None:
    registry.fit("batch", TIMESTAMPS, VALUES)
    points = value("anomaly_points_scored_total", detector="zscore")
    flagged = value("anomaly_anomalies_flagged_total", detector="zscore")
    _, scores, _ = registry.score_batch(
        "batch", [1691000300, 1691000360, 1691000420], [11, 99, -99]
    )
    assert int(scores.anomaly.sum()) == 2
    assert value("anomaly_points_scored_total", detector="zscore") == points + 3
    assert value("anomaly_anomalies_flagged_total", detector="zscore") == flagged + 2


def test_render_without_run_dir_uses_this_process() -> None:
    assert metrics.run_dir() is None
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {
        "anomaly_http_request_duration_seconds",
        "anomaly_fits",
        "anomaly_points_scored",
        "anomaly_anomalies_flagged",
        "anomaly_model_cache_hits",
        "anomaly_model_cache_misses",
        "anomaly_model_cache_size",
    } <= families


def run_python(code: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(run_dir)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )


WORKER = """
from anomaly_api import metrics
metrics.record_fit("zscore")
metrics.record_scores("zscore", 10, 3)
metrics.set_cache_size({cached})
metrics.observe_request("/fit/{{series_id}}", "POST", 200, 0.002)
print(metrics.run_dir())
"""


def test_multiprocess_render_sums_workers_and_forgets_dead_gauges(tmp_path: Path) -> None:
    # The first "worker" exits: its counters still count, its cache no longer does.
    assert run_python(WORKER.format(cached=5), tmp_path).stdout.strip() == str(tmp_path)
    code = WORKER.format(cached=2) + "import sys; sys.stdout.flush()\n"
    code += "sys.stdout.buffer.write(metrics.render()[0])\n"
    body = run_python(code, tmp_path).stdout.split("\n", 1)[1].encode()
    assert value("anomaly_fits_total", body, detector="zscore") == 2
    assert value("anomaly_points_scored_total", body, detector="zscore") == 20
    assert value("anomaly_anomalies_flagged_total", body, detector="zscore") == 6
    assert value(REQUESTS, body, handler="/fit/{series_id}", status="200") == 2
    assert value("anomaly_model_cache_size", body) == 2
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 1


def test_importing_the_cli_leaves_prometheus_client_unimported() -> None:
    # So that `serve` can set PROMETHEUS_MULTIPROC_DIR before prometheus_client reads it.
    code = "import sys, anomaly_api.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_tallied_observations_match_what_observe_would_record() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    samples = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.2, 7.0, 11.0, 0.0025]
    for seconds in samples:
        metrics.observe_request("/tally-check", "GET", 200, seconds)
    metrics.flush()
    reference_registry = CollectorRegistry()
    reference = Histogram(
        "anomaly_http_request_duration_seconds",
        "reference",
        ["handler", "method", "status"],
        buckets=metrics.LATENCY_BUCKETS,
        registry=reference_registry,
    )
    for seconds in samples:
        reference.labels("/tally-check", "GET", "200").observe(seconds)

    def lines(text: str) -> list[str]:
        return sorted(
            line
            for line in text.splitlines()
            if '"/tally-check"' in line and "_created" not in line
        )

    expected = lines(generate_latest(reference_registry).decode())
    assert expected and lines(metrics.render()[0].decode()) == expected


def test_counts_reach_the_metrics_without_a_scrape_within_the_flush_interval() -> None:
    import time

    before = metrics.CACHE_MISSES._value.get()
    metrics.record_cache_miss()
    deadline = time.monotonic() + 10 * metrics.FLUSH_INTERVAL_S
    while metrics.CACHE_MISSES._value.get() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metrics.CACHE_MISSES._value.get() == before + 1


def test_a_cached_predict_counts_what_the_two_separate_calls_count() -> None:
    """record_cached_predict (the fast path's one call) adds to the same series as
    record_predict(cache hit) plus observe_request(POST 200), first call or later."""
    names: tuple[tuple[str, dict[str, str]], ...] = (
        ("anomaly_points_scored_total", {"detector": "tally-check"}),
        ("anomaly_anomalies_flagged_total", {"detector": "tally-check"}),
        ("anomaly_model_cache_hits_total", {}),
        (REQUESTS, {"handler": "/tally-fast", "method": "POST", "status": "200"}),
        (
            "anomaly_http_request_duration_seconds_bucket",
            {"handler": "/tally-fast", "le": "0.001"},
        ),
        ("anomaly_http_request_duration_seconds_sum", {"handler": "/tally-fast"}),
    )

    def snapshot() -> list[float]:
        metrics.flush()
        return [value(name, None, **labels) for name, labels in names]

    start = snapshot()
    for anomaly, seconds in ((True, 0.0004), (False, 0.003), (True, 0.0002), (False, 0.0007)):
        metrics.record_cached_predict("/tally-fast", "tally-check", anomaly, seconds)
    after_fast = snapshot()
    for anomaly, seconds in ((True, 0.0004), (False, 0.003), (True, 0.0002), (False, 0.0007)):
        metrics.record_predict("tally-check", anomaly, True)
        metrics.observe_request("/tally-fast", "POST", 200, seconds)
    after_separate = snapshot()
    fast = [b - a for a, b in zip(start, after_fast, strict=True)]
    separate = [b - a for a, b in zip(after_fast, after_separate, strict=True)]
    assert fast == pytest.approx(separate)
    assert fast[:5] == [4, 2, 4, 4, 3]
