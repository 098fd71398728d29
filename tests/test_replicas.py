"""Replica guarantees on PostgreSQL, with real ``anomaly-api serve`` processes.

Two or three servers on different ports share one PostgreSQL schema (a throwaway one of
this test's own); nothing else connects them, as with replicas behind a load balancer.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONTRACT_FIT
from tests.servers import Server, call

pytestmark = pytest.mark.slow
POINT = {"timestamp": "1691000240", "value": 18}
STALENESS_BOUND_S = 2.0
"""What the tests allow; the README states the measured figure (milliseconds)."""


@pytest.fixture
def replicas(postgresql_url: str, tmp_path: Path) -> Iterator[Callable[[int], list[Server]]]:
    started: list[Server] = []

    def start(count: int) -> list[Server]:
        servers = [
            Server(postgresql_url, log=tmp_path / f"replica-{len(started) + index}.log")
            for index in range(count)
        ]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        server.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = STALENESS_BOUND_S) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.002)
    return time.monotonic() - started


def test_concurrent_fits_spread_over_replicas_get_versions_1_to_n(
    replicas: Callable[[int], list[Server]],
) -> None:
    servers = replicas(3)
    urls = [servers[index % 3].url + "/fit/hot" for index in range(60)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda url: call(url, "POST", CONTRACT_FIT), urls))
    assert [status for status, _ in answers] == [200] * 60
    assert sorted(int(body["version"]) for _, body in answers) == list(range(1, 61))
    for server in servers:
        detail = call(server.url + "/series/hot")[1]
        assert [v["version"] for v in detail["versions"]] == [str(n) for n in range(1, 61)]


def test_a_fit_acknowledged_by_one_replica_is_latest_on_the_others(
    replicas: Callable[[int], list[Server]],
) -> None:
    first, second, third = replicas(3)
    assert call(first.url + "/fit/sensor", "POST", CONTRACT_FIT)[0] == 200
    for server in (second, third):  # both now hold version 1 as "latest" in their caches
        assert call(server.url + "/predict/sensor", "POST", POINT)[1]["model_version"] == "1"
    delays: list[float] = []
    for _ in range(10):
        status, fitted = call(first.url + "/fit/sensor", "POST", CONTRACT_FIT)
        assert status == 200
        for server in (second, third):

            def answers_new_version(
                server: Server = server, version: str = fitted["version"]
            ) -> bool:
                status, body = call(server.url + "/predict/sensor", "POST", POINT)
                assert status == 200, body
                return bool(body["model_version"] == version)

            delays.append(wait_for(answers_new_version, "the other replica to see the fit"))
    assert max(delays) < STALENESS_BOUND_S


def test_listings_counts_and_deletes_agree_on_every_replica(
    replicas: Callable[[int], list[Server]],
) -> None:
    servers = replicas(2)
    for index, server in zip(range(6), itertools.cycle(servers), strict=False):
        assert call(f"{server.url}/fit/s{index}", "POST", CONTRACT_FIT)[0] == 200
    for server in servers:  # every replica caches every model
        for index in range(6):
            assert call(f"{server.url}/predict/s{index}?version=1", "POST", POINT)[0] == 200

    def view(server: Server) -> tuple[Any, ...]:
        listing = call(server.url + "/series?limit=100")[1]
        health = call(server.url + "/healthcheck")[1]
        return (
            [(item["series_id"], item["latest_version"]) for item in listing["series"]],
            health["series_trained"],
        )

    assert view(servers[0]) == view(servers[1])
    assert view(servers[0])[1] == 6

    assert call(servers[0].url + "/series/s1", "DELETE")[0] == 200
    assert call(servers[0].url + "/series/s2/versions/1", "DELETE")[0] == 200
    # The other replica still has both models cached; it must stop serving them.
    for path in ("/predict/s1", "/predict/s1?version=1", "/predict/s2?version=1"):

        def gone(path: str = path) -> bool:
            return call(servers[1].url + path, "POST", POINT)[0] == 404

        wait_for(gone, f"{path} to be gone on the other replica")
    assert view(servers[0]) == view(servers[1])
    assert view(servers[1])[1] == 4
    # Numbers are never reused, whichever replica fits next.
    assert call(servers[1].url + "/fit/s1", "POST", CONTRACT_FIT)[1]["version"] == "2"


def test_once_a_delete_is_answered_no_replica_serves_what_it_deleted(
    replicas: Callable[[int], list[Server]],
) -> None:
    first, second = replicas(2)
    count = 40
    for index in range(count):
        for _ in range(2):
            assert call(f"{first.url}/fit/d{index}", "POST", CONTRACT_FIT)[0] == 200
        # The other replica holds version 1 and the latest in its cache.
        assert call(f"{second.url}/predict/d{index}?version=1", "POST", POINT)[0] == 200
        assert call(f"{second.url}/predict/d{index}", "POST", POINT)[0] == 200
    # Keep the other replica busy (its listener thread must compete for the CPU).
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            call(f"{second.url}/predict/busy?observe=false", "POST", POINT)

    assert call(f"{first.url}/fit/busy", "POST", CONTRACT_FIT)[0] == 200
    loaders = [threading.Thread(target=load) for _ in range(6)]
    for thread in loaders:
        thread.start()
    served = []
    try:
        served = _delete_and_ask_elsewhere(first, second, count)
    finally:
        stop.set()
        for thread in loaders:
            thread.join()
    assert served == []


def _delete_and_ask_elsewhere(first: Server, second: Server, count: int) -> list[Any]:
    served = []
    for index in range(count):
        assert call(f"{first.url}/series/d{index}/versions/1", "DELETE")[0] == 200
        status = call(f"{second.url}/predict/d{index}?version=1", "POST", POINT)[0]
        if status != 404:
            served.append((f"d{index} version 1", status))
        assert call(f"{first.url}/series/d{index}", "DELETE")[0] == 200
        status = call(f"{second.url}/predict/d{index}", "POST", POINT)[0]
        if status != 404:
            served.append((f"d{index}", status))
    return served


def test_a_replica_killed_mid_load_loses_no_acknowledged_fit(
    replicas: Callable[[int], list[Server]],
) -> None:
    victim, survivor = replicas(2)
    acknowledged: list[tuple[str, str]] = []
    survivor_failures: list[Any] = []
    stop = threading.Event()
    lock = threading.Lock()

    def keep_fitting(server: Server, series_id: str) -> None:
        while not stop.is_set():
            try:
                status, body = call(f"{server.url}/fit/{series_id}", "POST", CONTRACT_FIT, 10)
            except (OSError, http.client.HTTPException) as exc:
                # The victim's connections die with it, possibly mid-answer: not acknowledged.
                if server is survivor:
                    survivor_failures.append(repr(exc))
                continue
            if status == 200:
                with lock:
                    acknowledged.append((series_id, body["version"]))
            elif server is survivor:
                survivor_failures.append((status, body))

    threads = [
        threading.Thread(target=keep_fitting, args=(server, f"{name}{index}"))
        for server, name in (
            (victim, "v"),
            (survivor, "s"),
            (victim, "shared"),
            (survivor, "shared"),
        )
        for index in range(2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    victim.kill()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()

    assert survivor_failures == []
    assert any(series_id.startswith("v") for series_id, _ in acknowledged)
    stored: dict[str, set[str]] = {}
    for series_id in {series_id for series_id, _ in acknowledged}:
        detail = call(f"{survivor.url}/series/{series_id}")[1]
        stored[series_id] = {version["version"] for version in detail["versions"]}
    missing = [pair for pair in acknowledged if pair[1] not in stored[pair[0]]]
    assert missing == []
    # And the survivor serves every acknowledged version.
    for series_id, version in acknowledged[-20:]:
        status, body = call(f"{survivor.url}/predict/{series_id}?version={version}", "POST", POINT)
        assert (status, body["model_version"]) == (200, version)
