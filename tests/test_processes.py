"""Guarantees that only real server processes can show: shared files, kill -9, workers."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

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
