"""Live streams with real ``anomaly-api serve`` processes: several workers, replicas on
PostgreSQL, ``kill -9`` and SIGTERM. The reference for every score is one in-process
registry given the same fit and the same points."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store
from tests.servers import Server, call

pytestmark = pytest.mark.slow
START = 1_691_000_000
POLICY = {"every": 40, "window": 300}  # retrains inside the stream, too


def history(points: int = 400, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    timestamps = START + 300 * np.arange(points)
    values = 100 + 10 * np.sin(2 * np.pi * timestamps / 86_400) + rng.normal(0, 2, points)
    return {"timestamps": timestamps.tolist(), "values": values.tolist()}


def stream(points: int, seed: int = 2, after: int = 400) -> list[tuple[int, float]]:
    rng = np.random.default_rng(seed)
    timestamps = START + 300 * (after + np.arange(points))
    values = 100 + 10 * np.sin(2 * np.pi * timestamps / 86_400) + rng.normal(0, 2, points)
    values[points // 4 :: 23] += 40
    return list(zip(timestamps.tolist(), values.tolist(), strict=True))


FIELDS = ("model_version", "anomaly", "score", "expected", "lower", "upper", "observed")


def reference(
    tmp_path: Path, fits: dict[str, dict[str, Any]], points: list[tuple[str, int, float]]
) -> list[tuple[Any, ...]]:
    """What one process answers, in-process: each series fitted, then each point."""
    registry = ModelRegistry(open_store(f"sqlite:///{tmp_path / 'reference.db'}"), stream_flush_s=0)
    try:
        for series_id, body in fits.items():
            registry.fit(
                series_id,
                body["timestamps"],
                body["values"],
                body.get("detector"),
                retrain=body.get("retrain"),
            )
        answers = [
            registry.predict(series_id, value, timestamp) for series_id, timestamp, value in points
        ]
    finally:
        registry.close()
    return [
        (str(a.version), a.anomaly, a.score, a.expected, a.lower, a.upper, a.observed)
        for a in answers
    ]


def fields(answer: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(answer[name] for name in FIELDS)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_a_stream_spread_over_two_workers_scores_as_one_process(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(tmp_path / "workers.db", workers=2)
    servers.append(server)
    fit = {**history(), "detector": "adaptive", "retrain": POLICY}
    assert call(server.url + "/fit/s", "POST", fit)[0] == 200
    points = stream(120)
    # urllib opens a connection per request: the kernel hands each to either worker.
    answers = [
        call(server.url + "/predict/s", "POST", {"timestamp": str(t), "value": v})
        for t, v in points
    ]
    assert {status for status, _ in answers} == {200}
    expected = reference(tmp_path, {"s": fit}, [("s", t, v) for t, v in points])
    assert [fields(body) for _, body in answers] == expected
    assert {body["model_version"] for _, body in answers} == {"1", "2", "3"}  # v4: after the last
    detail = call(server.url + "/series/s")[1]
    assert detail["stream"]["points_observed"] == 120
    assert [v["trigger"] for v in detail["versions"]] == ["client", *["retrain"] * 3]


def test_a_bulk_request_over_two_workers_scores_each_series_as_one_process(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = Server(tmp_path / "workers.db", workers=2)
    servers.append(server)
    fits = {f"metric-{index}": {**history(seed=index), "detector": "hampel"} for index in range(12)}
    for series_id, body in fits.items():
        assert call(f"{server.url}/fit/{series_id}", "POST", body)[0] == 200
    points = [
        (series_id, timestamp, value + index)
        for timestamp, value in stream(15)
        for index, series_id in enumerate(fits)
    ]
    status, body = call(
        server.url + "/predict",
        "POST",
        [{"series_id": s, "timestamp": t, "value": v} for s, t, v in points],
    )
    assert status == 200 and body["errors"] == 0
    assert [r["series_id"] for r in body["results"]] == [s for s, _, _ in points]
    assert [fields(r) for r in body["results"]] == reference(tmp_path, fits, points)


def test_a_worker_killed_mid_stream_is_replaced_and_its_series_resume(
    tmp_path: Path, servers: list[Server]
) -> None:
    import os
    import signal

    server = Server(tmp_path / "workers.db", workers=2)
    servers.append(server)
    assert call(server.url + "/fit/s", "POST", {**history(), "detector": "zscore"})[0] == 200
    points = stream(60)
    for t, v in points[:30]:
        assert call(server.url + "/predict/s", "POST", {"timestamp": t, "value": v})[0] == 200
    found = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=True
    )
    children = [int(pid) for pid in found.stdout.split()]
    workers = [
        pid
        for pid in children  # not multiprocessing's resource tracker
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 2
    for pid in workers:  # kill -9 both workers: every series' owner dies
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    answered: list[int] = []
    for t, v in points[30:]:
        while True:
            status, body = call(server.url + "/predict/s", "POST", {"timestamp": t, "value": v})
            if status == 200:
                answered.append(t)
                break
            assert status == 503 and time.monotonic() < deadline, (status, body)
            time.sleep(0.2)
    assert len(answered) == 30
    assert call(server.url + "/series/s")[1]["stream"]["last_timestamp"] == points[-1][0]


def measure_loss(
    server: Server, stop: Callable[[], None], restart: Callable[[], Server], rounds: int = 200
) -> dict[str, float]:
    """Stream points until ``stop`` (kill -9 or SIGTERM), restart, and see which
    acknowledged points the restarted server remembers."""
    assert call(server.url + "/fit/s", "POST", {**history(), "detector": "zscore"})[0] == 200
    acknowledged: list[tuple[int, float]] = []  # (timestamp, when the 200 arrived)
    for t, v in stream(rounds):
        status, _ = call(server.url + "/predict/s", "POST", {"timestamp": t, "value": v})
        assert status == 200
        acknowledged.append((t, time.monotonic()))
        time.sleep(0.01)
    stopped_at = time.monotonic()
    stop()
    successor = restart()
    last = call(successor.url + "/series/s")[1]["stream"]["last_timestamp"]
    lost = [(t, when) for t, when in acknowledged if t > last]
    return {
        "acknowledged": len(acknowledged),
        "lost": len(lost),
        "window_s": stopped_at - lost[0][1] if lost else 0.0,
    }


def test_kill_9_loses_at_most_the_last_flush_interval(
    tmp_path: Path, servers: list[Server]
) -> None:
    database = tmp_path / "durable.db"
    env = {"ANOMALY_STREAM_FLUSH_S": "0.5"}
    server = Server(database, env=env)
    servers.append(server)

    def restart() -> Server:
        successor = Server(database, env=env, port=server.port)  # same instance id: at once
        servers.append(successor)
        return successor

    loss = measure_loss(server, server.kill, restart)
    # At most one flush interval (0.5 s) plus a save's duration and the time the kill
    # took to land; what was saved before is all there.
    assert loss["window_s"] <= 1.5, loss
    assert loss["acknowledged"] - loss["lost"] > 0


def test_sigterm_loses_nothing(tmp_path: Path, servers: list[Server]) -> None:
    database = tmp_path / "durable.db"
    server = Server(database, env={"ANOMALY_STREAM_FLUSH_S": "30"})  # no save on its own
    servers.append(server)

    def restart() -> Server:
        successor = Server(database, port=server.port)
        servers.append(successor)
        return successor

    loss = measure_loss(server, server.stop, restart, rounds=50)
    assert loss["lost"] == 0, loss


def test_a_stream_interleaved_over_two_replicas_on_postgresql_scores_as_one_process(
    postgresql_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    first = Server(postgresql_url, log=tmp_path / "replica-1.log")
    second = Server(postgresql_url, log=tmp_path / "replica-2.log")
    servers += [first, second]
    fit = {**history(), "detector": "adaptive", "retrain": POLICY}
    assert call(first.url + "/fit/s", "POST", fit)[0] == 200
    points = stream(90)
    # Each point to the other replica: every one takes the stream over from the other.
    answers = [
        call((first, second)[index % 2].url + "/predict/s", "POST", {"timestamp": t, "value": v})
        for index, (t, v) in enumerate(points)
    ]
    assert {status for status, _ in answers} == {200}
    expected = reference(tmp_path, {"s": fit}, [("s", t, v) for t, v in points])
    assert [fields(body) for _, body in answers] == expected
    time.sleep(1.5)  # a replica that does not hold the stream reads what was saved
    for server in (first, second):
        detail = call(server.url + "/series/s")[1]
        assert detail["stream"]["points_observed"] == 90
        assert [v["version"] for v in detail["versions"]] == ["1", "2", "3"]


def test_a_replica_killed_mid_stream_is_taken_over_from_what_it_saved(
    postgresql_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    env = {"ANOMALY_STREAM_LEASE_S": "2", "ANOMALY_STREAM_FLUSH_S": "0.2"}
    first = Server(postgresql_url, log=tmp_path / "replica-1.log", env=env)
    second = Server(postgresql_url, log=tmp_path / "replica-2.log", env=env)
    servers += [first, second]
    assert call(first.url + "/fit/s", "POST", {**history(), "detector": "hampel"})[0] == 200
    points = stream(40)
    for t, v in points[:20]:
        assert call(first.url + "/predict/s", "POST", {"timestamp": t, "value": v})[0] == 200
    time.sleep(0.5)  # saved
    first.kill()
    started = time.monotonic()
    statuses = []
    for t, v in points[20:]:
        while True:
            status, body = call(second.url + "/predict/s", "POST", {"timestamp": t, "value": v})
            statuses.append(status)
            if status == 200:
                break
            assert status == 503 and "retry" in body["detail"], body  # the dead one's lease
            assert time.monotonic() - started < 15
    assert call(second.url + "/series/s")[1]["stream"]["points_observed"] == 40
