"""Heavy requests against a real ``anomaly-api serve``: the findings of the security
issue replayed (many large detects at once, a detect far over the work budget) with the
server's memory read from ``/proc`` and statuses from the client. No timed assertions."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.bench_server import ServerProcess

pytestmark = pytest.mark.slow

POINTS = 50_000


def _post(url: str, body: bytes) -> tuple[int, str | None, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, None, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After"), error.read()


def _detect_body(detector: str, **params: object) -> bytes:
    rng = np.random.default_rng(1)
    return json.dumps(
        {
            "timestamps": list(range(0, POINTS * 60, 60)),
            "values": rng.normal(0, 1, POINTS).round(4).tolist(),
            "detector": detector,
            "params": params,
        }
    ).encode()


def test_many_heavy_detects_queue_or_get_503_and_health_stays_up(tmp_path: Path) -> None:
    env = {"ANOMALY_HEAVY_JOBS": "1", "ANOMALY_HEAVY_QUEUE": "4"}
    body = _detect_body("hampel", window=1000)
    with ServerProcess(tmp_path / "m.db", log=tmp_path / "server.log", env=env) as server:
        health: list[int] = []
        peak = 0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                with urllib.request.urlopen(server.url + "/healthcheck", timeout=60) as answer:
                    health.append(answer.status)
                peak = max(peak, server.rss_bytes() or 0)
                done.wait(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda _: _post(server.url + "/detect", body), range(16)))
        finally:
            done.set()
            watcher.join()
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= 5  # one running and four queued at least
    assert statuses[503] >= 1
    for status, retry_after, payload in answers:
        if status == 503:
            assert retry_after is not None and int(retry_after) >= 1
            assert "ANOMALY_HEAVY_QUEUE" in json.loads(payload)["detail"]
    assert health and set(health) == {200}
    assert peak < 1 << 30  # a points x window array alone was 2.5 GB


def test_a_detect_far_over_the_budget_is_refused_before_it_starts(tmp_path: Path) -> None:
    body = _detect_body("pattern", history=8640, window=288)
    with ServerProcess(tmp_path / "m.db", log=tmp_path / "server.log") as server:
        status, _, payload = _post(server.url + "/detect", body)
        assert status == 413
        assert "ANOMALY_MAX_REQUEST_WORK_S" in json.loads(payload)["detail"]
        assert _post(server.url + "/detect", _detect_body("zscore"))[0] == 200
