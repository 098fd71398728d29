"""The registry over PostgreSQL: what replicas sharing a database need of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from anomaly_api.errors import SeriesNotFound, StoreUnavailable
from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store
from anomaly_api.storage.base import Changes
from anomaly_api.storage.postgresql import PostgreSQLModelStore
from tests.postgres import with_port
from tests.tcp_proxy import TcpProxy
from tests.test_registry import TIMESTAMPS, VALUES


@pytest.fixture
def pair(postgresql_url: str) -> Iterator[tuple[ModelRegistry, ModelRegistry]]:
    """Two registries on one database, as two replicas have."""
    first = ModelRegistry(open_store(postgresql_url))
    second = ModelRegistry(open_store(postgresql_url))
    yield first, second
    first.close()
    second.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.002)


def count_calls(registry: ModelRegistry, method: str) -> list[str]:
    """Record the series ids of every ``registry.store.<method>`` call from now on."""
    calls: list[str] = []
    original = getattr(registry.store, method)

    def counted(series_id: str, *args: object) -> object:
        calls.append(series_id)
        return original(series_id, *args)

    setattr(registry.store, method, counted)
    return calls


def fitted(registry: ModelRegistry, position: int) -> frozenset[str] | None:
    found = registry.store.changes_since(position)
    return None if found is None else found[1].fitted


def test_a_fit_elsewhere_forgets_only_that_series_latest(
    pair: tuple[ModelRegistry, ModelRegistry],
) -> None:
    first, second = pair
    assert isinstance(second.store, PostgreSQLModelStore)
    assert second.store._listener.connected.wait(5)
    start = second.store.change_marker()
    for series_id in ("a", "b", "c"):
        first.fit(series_id, TIMESTAMPS, VALUES)
    # Every notification has arrived: nothing second learns later predates what it reads.
    eventually(lambda: fitted(second, start) == frozenset({"a", "b", "c"}))
    for series_id in ("a", "b", "c"):
        assert second.predict(series_id, 10.0, 0).version == 1
    reads = count_calls(second, "latest_version")
    marker = second.store.change_marker()
    first.fit("a", TIMESTAMPS, VALUES)
    eventually(lambda: second.store.change_marker() != marker)
    assert [second.predict(s, 10.0, 0).version for s in ("a", "b", "c")] == [2, 1, 1]
    assert reads == ["a"]  # b and c were answered from what second already knew
    for series_id in ("b", "c"):  # and from its cache, without the store
        assert second.predict_cached(series_id, 10.0, 0) is not None


def test_a_delete_elsewhere_forgets_that_series_only(
    pair: tuple[ModelRegistry, ModelRegistry],
) -> None:
    first, second = pair
    first.fit("a", TIMESTAMPS, VALUES)
    first.fit("b", TIMESTAMPS, VALUES)
    assert second.predict("a", 10.0, 0, version=1).version == 1
    assert second.predict("b", 10.0, 0, version=1).version == 1
    marker = second.store.change_marker()
    first.delete_series("a")
    eventually(lambda: second.store.change_marker() != marker)
    with pytest.raises(SeriesNotFound):
        second.predict("a", 10.0, 0, version=1)
    reads = count_calls(second, "get_model")
    assert second.predict("b", 10.0, 0, version=1).version == 1
    assert reads == []  # b stayed cached


def test_a_known_delete_stops_held_models_answering_while_the_store_is_down(
    postgresql_url: str,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    first = ModelRegistry(open_store(postgresql_url))
    second = ModelRegistry(open_store(with_port(postgresql_url, proxy.port)))
    try:
        store = second.store
        assert isinstance(store, PostgreSQLModelStore)
        assert store._listener.connected.wait(5)
        start = store.change_marker()
        for series_id in ("kept", "refitted", "gone"):
            first.fit(series_id, TIMESTAMPS, VALUES)
        # Every notification has arrived before second caches anything.
        eventually(lambda: fitted(second, start) == frozenset({"kept", "refitted", "gone"}))
        for series_id in ("kept", "refitted", "gone"):
            assert second.predict(series_id, 10.0, 0).version == 1
        # A fit announced just before the outage: held models still answer, except the
        # refitted series' latest, which is known to have moved.
        marker = second.store.change_marker()
        first.fit("refitted", TIMESTAMPS, VALUES)
        eventually(lambda: second.store.change_marker() != marker)
        proxy.down()
        eventually(lambda: store._listener.failure() is not None)
        assert second.predict("kept", 10.0, 0).version == 1
        assert second.predict("refitted", 10.0, 0, version=1).version == 1
        with pytest.raises(StoreUnavailable):
            second.predict("refitted", 10.0, 0)
        proxy.up()
        eventually(lambda: store._listener.failure() is None)
        assert second.predict("refitted", 10.0, 0).version == 2
        # (The reconnection made it forget every latest version: read kept's again.)
        assert second.predict("kept", 10.0, 0).version == 1
        # A delete announced just before the outage: nothing of that series may answer;
        # the other series' models may.
        marker = second.store.change_marker()
        first.delete_series("gone")
        eventually(lambda: second.store.change_marker() != marker)
        proxy.down()
        eventually(lambda: store._listener.failure() is not None)
        for version in (None, 1):
            with pytest.raises(StoreUnavailable):
                second.predict("gone", 10.0, 0, version=version)
            assert second.predict("kept", 10.0, 0, version=version).version == 1
    finally:
        proxy.close()
        first.close()
        second.close()


def test_a_sync_overtaken_by_an_older_one_still_forgets_the_refitted_series(
    pair: tuple[ModelRegistry, ModelRegistry],
) -> None:
    """Thread B syncs from an older marker and takes the lock first; thread A, whose
    marker includes this process's own fit of ``s``, must still forget ``s``'s latest."""
    registry, other = pair
    store = registry.store
    assert isinstance(store, PostgreSQLModelStore)
    assert store._listener.connected.wait(5)
    registry.fit("s", TIMESTAMPS, VALUES)
    registry.fit("x", TIMESTAMPS, VALUES)
    time.sleep(0.3)
    assert registry.predict("s", 10.0, 0).version == 1
    assert registry.predict("x", 10.0, 0).version == 1
    marker = store.change_marker()
    other.fit("x", TIMESTAMPS, VALUES)
    eventually(lambda: store.change_marker() != marker)
    time.sleep(0.1)

    b_computed, release_b = threading.Event(), threading.Event()
    changes_since = store.changes_since

    def interleaved(known: int) -> tuple[int, Changes] | None:
        result = changes_since(known)
        if threading.current_thread().name == "B":
            b_computed.set()
            release_b.wait(5)  # B holds its older answer until A has read its own
        elif threading.current_thread().name == "A":
            release_b.set()
            time.sleep(0.3)  # and B takes the lock first
        return result

    store.changes_since = interleaved  # type: ignore[method-assign,assignment]
    answers: dict[str, int] = {}
    thread_b = threading.Thread(
        name="B", target=lambda: answers.setdefault("x", registry.predict("x", 10.0, 0).version)
    )
    thread_b.start()
    assert b_computed.wait(5)
    fitted = registry.fit("s", TIMESTAMPS, VALUES)  # acknowledged in this process
    thread_a = threading.Thread(
        name="A", target=lambda: answers.setdefault("s", registry.predict("s", 10.0, 0).version)
    )
    thread_a.start()
    thread_a.join()
    thread_b.join()
    assert answers == {"x": 2, "s": fitted.version}
