"""The registry over PostgreSQL: what replicas sharing a database need of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from anomaly_api.errors import SeriesNotFound
from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store
from anomaly_api.storage.postgresql import PostgreSQLModelStore
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
    eventually(lambda: second.store.fitted_since(start) == frozenset({"a", "b", "c"}))
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


def test_a_delete_elsewhere_still_empties_every_cache(
    pair: tuple[ModelRegistry, ModelRegistry],
) -> None:
    first, second = pair
    first.fit("a", TIMESTAMPS, VALUES)
    first.fit("b", TIMESTAMPS, VALUES)
    assert second.predict("a", 10.0, 0, version=1).version == 1
    marker = second.store.change_marker()
    first.delete_series("a")
    eventually(lambda: second.store.change_marker() != marker)
    with pytest.raises(SeriesNotFound):
        second.predict("a", 10.0, 0, version=1)
    assert second.predict("b", 10.0, 0).version == 1
