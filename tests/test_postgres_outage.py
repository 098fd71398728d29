"""PostgreSQL stopped, restarted or not yet up: 503s, cached predicts, self-recovery.

The server reaches PostgreSQL through :class:`~tests.tcp_proxy.TcpProxy`, which the
tests switch off and on: the real server keeps running for everything else.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo as pg_conninfo

from anomaly_api.detectors import Series, detector_class
from anomaly_api.storage import NewModel, open_store
from anomaly_api.storage.postgresql import MIGRATIONS
from tests.conftest import CONTRACT_FIT
from tests.postgres import with_port
from tests.servers import Server, call
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
POINT = {"timestamp": "1691000240", "value": 18}
QUICK_S = 1.0
"""An answer about an unreachable store must come this fast (it comes in milliseconds)."""


@pytest.fixture
def proxy(postgresql_url: str) -> Iterator[TcpProxy]:
    parts = pg_conninfo.conninfo_to_dict(postgresql_url)
    tunnel = TcpProxy(str(parts.get("host", "127.0.0.1")), int(str(parts.get("port", 5432))))
    yield tunnel
    tunnel.close()


@pytest.fixture
def proxied_url(postgresql_url: str, proxy: TcpProxy) -> str:
    """``postgresql_url`` through the proxy."""
    return with_port(postgresql_url, proxy.port)


@pytest.fixture
def server(proxied_url: str, tmp_path: Path) -> Iterator[Server]:
    started = Server(proxied_url, log=tmp_path / "server.log")
    yield started
    started.stop()


def timed_call(
    url: str, method: str = "GET", body: object = None
) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    status, answer = call(url, method, body)
    return status, answer, time.monotonic() - started


def fit_elsewhere(postgresql_url: str, series_id: str) -> None:
    """A fit made by another replica: this server has never seen the series."""
    series = Series.from_arrays(CONTRACT_FIT["timestamps"], CONTRACT_FIT["values"])
    model = detector_class("zscore")(None)
    model.fit(series)
    store = open_store(postgresql_url)
    try:
        stamps = [int(stamp) for stamp in CONTRACT_FIT["timestamps"]]
        store.create_version(
            NewModel(
                series_id=series_id,
                detector=model.name,
                params=model.params,
                state=model.state(),
                points_used=5,
                first_timestamp=stamps[0],
                last_timestamp=stamps[-1],
                training=series,
            )
        )
    finally:
        store.close()


def wait_for_status(url: str, status: int, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while call(url)[0] != status:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{url} did not answer {status} within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_postgresql_down_gives_quick_503s_cached_predicts_and_recovery(
    server: Server, proxy: TcpProxy, postgresql_url: str
) -> None:
    assert call(server.url + "/fit/cached", "POST", CONTRACT_FIT)[0] == 200
    assert call(server.url + "/predict/cached", "POST", POINT)[0] == 200
    fit_elsewhere(postgresql_url, "uncached")

    proxy.down()
    time.sleep(0.3)
    # Served from the cache: no store needed.
    for path in ("/predict/cached", "/predict/cached?version=1"):
        status, body, _ = timed_call(server.url + path, "POST", POINT)
        assert (status, body["model_version"]) == (200, "1")
    # Everything that needs the store: a quick, clear 503.
    for method, path, request in (
        ("POST", "/predict/uncached", POINT),
        ("POST", "/fit/cached", CONTRACT_FIT),
        ("GET", "/series", None),
        ("GET", "/series/cached", None),
        ("DELETE", "/series/cached", None),
    ):
        status, answer, seconds = timed_call(server.url + path, method, request)
        assert status == 503, (path, answer)
        assert "PostgreSQL" in answer["detail"] and "unreachable" in answer["detail"]
        assert seconds < QUICK_S, (path, seconds)
    status, health, seconds = timed_call(server.url + "/healthcheck")
    assert (status, health["status"], health["store"]["ok"]) == (503, "unavailable", False)
    assert health["store"]["backend"] == "postgresql" and "unreachable" in health["store"]["error"]
    assert seconds < QUICK_S

    proxy.up()
    wait_for_status(server.url + "/healthcheck", 200)
    status, body = call(server.url + "/predict/uncached", "POST", POINT)
    assert (status, body["model_version"]) == (200, "1")
    assert call(server.url + "/fit/cached", "POST", CONTRACT_FIT)[1]["version"] == "2"
    # "latest" is re-read after the outage: a fit made meanwhile elsewhere would show.
    assert call(server.url + "/predict/cached", "POST", POINT)[1]["model_version"] == "2"


def test_a_restarted_postgresql_is_used_again_without_a_single_error(
    server: Server, proxy: TcpProxy
) -> None:
    for index in range(5):
        assert call(f"{server.url}/fit/s{index}", "POST", CONTRACT_FIT)[0] == 200
    proxy.down()  # every pooled connection dies, as in a restart
    proxy.up()
    # Nothing reads meanwhile (a read would have its broken connection replaced and be
    # retried); give the listener time to reconnect, which also replaces the pool's
    # broken connections, then write first: a write is never retried.
    time.sleep(2.0)
    for index in range(5):
        status, answer = call(f"{server.url}/fit/s{index}", "POST", CONTRACT_FIT)
        assert (status, answer.get("version")) == (200, "2"), answer
        assert call(f"{server.url}/series/s{index}")[0] == 200


def test_a_replica_starts_before_postgresql_and_recovers_when_it_comes(
    proxy: TcpProxy, proxied_url: str, tmp_path: Path
) -> None:
    proxy.down()
    server = Server(proxied_url, log=tmp_path / "early.log", wait=False)
    try:
        server.wait_ready(status=503)  # up and answering, its store reported down
        status, answer, seconds = timed_call(server.url + "/fit/early", "POST", CONTRACT_FIT)
        assert status == 503 and "unreachable" in answer["detail"] and seconds < QUICK_S
        proxy.up()
        wait_for_status(server.url + "/healthcheck", 200)
        # The schema is created on first contact.
        assert call(server.url + "/fit/early", "POST", CONTRACT_FIT)[1]["version"] == "1"
        assert call(server.url + "/predict/early", "POST", POINT)[0] == 200
    finally:
        server.stop()


def test_the_schema_is_recorded_in_a_versioned_migration_table(
    server: Server, postgresql_url: str
) -> None:
    assert call(server.url + "/fit/x", "POST", CONTRACT_FIT)[0] == 200
    with psycopg.connect(postgresql_url) as connection:
        rows = connection.execute(
            "SELECT version, description FROM anomaly_schema_migrations"
        ).fetchall()
    assert [version for version, _ in rows] == [version for version, _, _ in MIGRATIONS]
