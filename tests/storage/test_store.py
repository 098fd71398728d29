"""The ModelStore suite; every backend must pass it unchanged."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from anomaly_api.detectors import Series
from anomaly_api.errors import InvalidInput, QuotaExceeded
from anomaly_api.quotas import NO_LIMITS, Limits, Quota, Usage
from anomaly_api.storage import ModelStore, NewModel, open_store
from anomaly_api.storage.base import (
    Changes,
    Retention,
    StreamPoint,
    StreamState,
    StreamUpdate,
)
from anomaly_api.storage.chunks import pack_point

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store under test lives: a fresh SQLite file or PostgreSQL schema."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgresql_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[ModelStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def new_model(series_id: str = "s", points: int = 10) -> NewModel:
    timestamps = np.arange(points, dtype=np.int64) * 60 + 1_691_000_000
    values = np.linspace(0.0, 1.0, points)
    return NewModel(
        series_id=series_id,
        detector="zscore",
        params={"threshold": 3.0, "direction": "both"},
        state={"mean": 0.5, "std": 0.3},
        points_used=points,
        first_timestamp=int(timestamps[0]),
        last_timestamp=int(timestamps[-1]),
        training=Series(timestamps, values),
    )


def test_versions_count_up_per_series(store: ModelStore) -> None:
    assert [store.create_version(new_model("a")).version for _ in range(3)] == [1, 2, 3]
    assert store.create_version(new_model("b")).version == 1
    assert store.latest_version("a") == 3
    assert store.latest_version("missing") is None


def test_record_round_trips(store: ModelStore) -> None:
    created = store.create_version(new_model("a", points=7))
    loaded = store.get_model("a", created.version)
    assert loaded == created
    assert store.get_model("a") == created
    assert store.get_model("a", 99) is None
    assert loaded is not None and loaded.params == {"threshold": 3.0, "direction": "both"}


def test_training_points_round_trip_exactly(store: ModelStore) -> None:
    model = new_model("a", points=1000)
    created = store.create_version(model)
    stored = store.training_data("a", created.version)
    assert stored is not None
    np.testing.assert_array_equal(stored.timestamps, model.training.timestamps)
    np.testing.assert_array_equal(stored.values, model.training.values)
    assert store.training_data("a", 42) is None


def test_listing_pages_through_every_series(store: ModelStore) -> None:
    for index in range(25):
        store.create_version(new_model(f"s{index:03d}"))
    store.create_version(new_model("s000"))
    seen: list[str] = []
    after = None
    while True:
        page = store.list_series(10, after)
        if not page:
            break
        seen += [item.series_id for item in page]
        after = page[-1].series_id
    assert seen == [f"s{index:03d}" for index in range(25)]
    first = store.list_series(1)[0]
    assert (first.latest_version, first.version_count) == (2, 2)
    assert store.count_series() == 25


def test_a_search_lists_the_ids_holding_the_text_in_either_ascii_case(
    store: ModelStore,
) -> None:
    ids = ["CPU-web-1", "cpu-db", "disk:web", "Über-cpu", "über_x", "100%_ok", "a_b", "axb"]
    for series_id in ids:
        store.create_version(new_model(series_id))
    assert [s.series_id for s in store.list_series(10, None, "cpu")] == [
        "CPU-web-1",
        "cpu-db",
        "Über-cpu",
    ]
    assert [s.series_id for s in store.list_series(10, None, "WEB")] == ["CPU-web-1", "disk:web"]
    # Other letters as they are (the same in both stores); no pattern characters.
    assert [s.series_id for s in store.list_series(10, None, "über")] == ["über_x"]
    assert [s.series_id for s in store.list_series(10, None, "%")] == ["100%_ok"]
    assert [s.series_id for s in store.list_series(10, None, "_b")] == ["a_b"]
    # Pages: after the previous page's last id, still filtered.
    first = store.list_series(1, None, "cpu")
    assert [s.series_id for s in store.list_series(5, first[0].series_id, "cpu")] == [
        "cpu-db",
        "Über-cpu",
    ]
    assert store.list_series(10, None, "nothing") == []


def test_deletes_never_reuse_numbers(store: ModelStore) -> None:
    for _ in range(3):
        store.create_version(new_model("a"))
    epoch = store.deletion_epoch()
    assert store.delete_version("a", 3) is True
    assert store.delete_version("a", 3) is False
    assert store.latest_version("a") == 2
    assert store.create_version(new_model("a")).version == 4
    assert store.delete_series("a") == 3
    assert store.delete_series("a") == 0
    assert store.count_series() == 0
    assert store.deletion_epoch() > epoch
    assert store.create_version(new_model("a")).version == 5


def test_change_marker_moves_when_another_connection_commits(
    store: ModelStore, store_url: str
) -> None:
    other = open_store(store_url)
    try:
        store.ping()  # connected, and listening where the backend listens
        wait_until(lambda: store.change_marker() == store.change_marker(), "a steady marker")
        before = store.change_marker()
        other.create_version(new_model("a"))
        # SQLite announces before the commit is acknowledged; PostgreSQL's notification
        # arrives a moment later.
        wait_until(lambda: store.change_marker() != before, "the marker to move")
        assert store.latest_version("a") == 1
    finally:
        other.close()


def test_change_marker_moves_at_once_for_own_commits(store: ModelStore) -> None:
    before = store.change_marker()
    store.create_version(new_model("a"))
    assert store.change_marker() != before
    moved = store.change_marker()
    assert store.delete_series("a") == 1
    assert store.change_marker() != moved


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.005)


def test_concurrent_creates_get_distinct_consecutive_versions(store: ModelStore) -> None:
    versions: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        version = store.create_version(new_model("hot")).version
        with lock:
            versions.append(version)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 51))


def test_unicode_and_long_ids_are_stored_verbatim(store: ModelStore) -> None:
    for series_id in ["température.salon", "温度", "x" * 256]:
        store.create_version(new_model(series_id))
        assert store.latest_version(series_id) == 1


def test_ping_answers(store: ModelStore) -> None:
    store.ping()
    assert store.backend in {"sqlite", "postgresql"}


def test_listing_leaves_out_series_whose_versions_were_all_deleted(store: ModelStore) -> None:
    for series_id in ("a", "b", "c"):
        store.create_version(new_model(series_id))
    store.delete_series("b")
    assert [item.series_id for item in store.list_series(10)] == ["a", "c"]
    assert store.list_series(10, after="a")[0].series_id == "c"
    assert store.count_series() == 2


def test_series_ids_sort_bytewise_on_every_backend(store: ModelStore) -> None:
    ids = ["b", "B", "é", "a", "Z", "温度", "a.b", "a-b", "~x", "0"]
    for series_id in ids:
        store.create_version(new_model(series_id))
    listed = [item.series_id for item in store.list_series(100)]
    assert listed == sorted(ids, key=lambda text: text.encode())
    assert [item.series_id for item in store.list_series(100, after="a")] == listed[
        listed.index("a") + 1 :
    ]


def test_versions_beyond_the_integer_range_simply_do_not_exist(store: ModelStore) -> None:
    store.create_version(new_model("a"))
    for version in (2**31, 2**40, -(2**40)):
        assert store.get_model("a", version) is None
        assert store.training_data("a", version) is None
        assert store.delete_version("a", version) is False


def test_a_copy_keeps_every_version_number_counter_and_training_point(
    store: ModelStore, tmp_path: Path
) -> None:
    for series_id, fits in (("a", 3), ("b", 2), ("gone", 2)):
        for _ in range(fits):
            store.create_version(new_model(series_id, points=50))
    store.delete_version("a", 2)
    store.delete_series("gone")
    target = open_store(f"sqlite:///{tmp_path / 'copy.db'}")
    try:
        copied = 0
        for batch in store.export_versions(batch_size=2):
            assert len(batch) <= 2
            copied += target.import_versions(batch, {})
        target.import_versions([], store.series_counters())
        assert copied == 4
        assert target.series_counters() == store.series_counters() == {"a": 3, "b": 2, "gone": 2}
        for series_id in ("a", "b"):
            assert target.list_versions(series_id) == store.list_versions(series_id)
        assert [record.version for record in target.list_versions("a")] == [1, 3]
        source_points = store.training_data("a", 3)
        target_points = target.training_data("a", 3)
        assert source_points is not None and target_points is not None
        np.testing.assert_array_equal(source_points.values, target_points.values)
        # Copying again changes nothing; numbering continues after the copied counters.
        assert sum(target.import_versions(b, {}) for b in store.export_versions()) == 0
        assert target.create_version(new_model("gone")).version == 3
        assert target.create_version(new_model("a")).version == 4
    finally:
        target.close()


def test_imported_versions_land_in_this_backend_unchanged(
    store: ModelStore, tmp_path: Path
) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    try:
        for _ in range(3):
            source.create_version(new_model("s", points=20))
        source.delete_version("s", 3)
        for batch in source.export_versions():
            assert store.import_versions(batch, source.series_counters()) == 2
        assert store.list_versions("s") == source.list_versions("s")
        assert store.latest_version("s") == 2
        assert store.create_version(new_model("s")).version == 4
    finally:
        source.close()


def test_a_listing_cursor_with_a_nul_character_pages_like_its_prefix(store: ModelStore) -> None:
    for series_id in ("a", "ab", "b"):
        store.create_version(new_model(series_id))
    # No id holds NUL (PostgreSQL text cannot): ids after "a\0b" are the ids after "a".
    assert [s.series_id for s in store.list_series(10, after="a\x00b")] == ["ab", "b"]
    assert [s.series_id for s in store.list_series(10, after="\x00")] == ["a", "ab", "b"]


def eventually_equal(read: Callable[[], object], expected: object, timeout: float = 5.0) -> None:
    """PostgreSQL learns of its own commits at once and of other processes' by
    notification; both stores must get there."""
    deadline = time.monotonic() + timeout
    while read() != expected:
        assert time.monotonic() < deadline, f"{read()!r} != {expected!r}"
        time.sleep(0.01)


def test_the_change_log_says_which_series_were_fitted_and_deleted(store: ModelStore) -> None:
    listener = getattr(store, "_listener", None)  # PostgreSQL: its first connection is
    if listener is not None:  # logged as "anything may have changed"; let it pass first
        assert listener.connected.wait(5)
    position = store.change_position()
    store.create_version(new_model("a"))
    store.create_version(new_model("b"))
    store.create_version(new_model("a"))

    def changes() -> object:
        found = store.changes_since(position)
        return None if found is None else found[1]

    eventually_equal(changes, Changes(frozenset({"a", "b"}), frozenset()))
    found = store.changes_since(position)
    assert found is not None
    middle = found[0]
    assert store.changes_since(middle) == (middle, Changes(frozenset(), frozenset()))
    store.delete_version("a", 1)
    store.delete_series("b")
    store.delete_series("nothing")  # no change
    # (PostgreSQL logs its own commits at once and again when their notifications
    # arrive, so fits from before ``middle`` may show up after it: forgetting a series
    # twice is harmless.)
    eventually_equal(
        lambda: (store.changes_since(middle) or (0, Changes(frozenset(), frozenset())))[1].deleted,
        frozenset({"a", "b"}),
    )
    eventually_equal(
        lambda: (store.changes_since(position) or (0, None))[1],
        Changes(frozenset({"a", "b"}), frozenset({"a", "b"}), dropped=frozenset({"b"})),
    )


# -- version triggers and retention ---------------------------------------------------


def automatic(series_id: str, prune: Retention | None = None) -> NewModel:
    return dataclasses.replace(
        new_model(series_id), trigger="retrain", retrain={"every": 10}, prune=prune
    )


def test_a_version_keeps_its_trigger_and_retrain_policy(store: ModelStore) -> None:
    client = store.create_version(
        dataclasses.replace(new_model("s"), retrain={"every": "1d", "window": 4032})
    )
    retrained = store.create_version(automatic("s"))
    assert (client.trigger, client.retrain) == ("client", {"every": "1d", "window": 4032})
    assert (retrained.trigger, retrained.retrain) == ("retrain", {"every": 10})
    assert store.list_versions("s") == [client, retrained]
    assert store.get_model("s") == retrained


def test_retention_keeps_client_fits_and_the_newest_automatic_versions(
    store: ModelStore,
) -> None:
    store.create_version(new_model("s"))  # 1: a client fit
    for _ in range(4):
        store.create_version(automatic("s"))  # 2..5
    store.create_version(new_model("s"))  # 6: a client fit
    position = store.change_position()
    store.create_version(automatic("s", prune=Retention(keep=2)))  # 7, keeps 5 and 7
    assert [record.version for record in store.list_versions("s")] == [1, 5, 6, 7]
    eventually_equal(
        lambda: (
            (store.changes_since(position) or (0, Changes(frozenset(), frozenset())))[1].deleted
        ),
        frozenset({"s"}),
    )
    store.create_version(automatic("s", prune=Retention(keep=1, keep_seconds=3600)))
    assert [record.version for record in store.list_versions("s")] == [1, 5, 6, 7, 8]
    store.create_version(automatic("s", prune=Retention(keep=1)))
    assert [record.version for record in store.list_versions("s")] == [1, 6, 9]
    assert store.count_series() == 1
    assert store.list_series(10)[0].version_count == 3


# -- streams ------------------------------------------------------------------------------


def points(start: int, count: int, version: int = 1) -> list[StreamPoint]:
    return [
        (start + 60 * index, float(index), version, 0.1, index % 7 == 0, 1.0, 0.5, None)
        for index in range(count)
    ]


def update(state: StreamState, new: list[StreamPoint], observed: int) -> StreamUpdate:
    return StreamUpdate(
        series_id=state.series_id,
        token=state.token,
        points=[pack_point(point) for point in new],
        last_timestamp=new[-1][0] if new else state.last_timestamp,
        observed=observed,
        context_version=1,
        context=json.dumps({"recent": [float(observed)]}),
    )


def test_a_stream_exports_whole_with_its_answers(store: ModelStore) -> None:
    assert store.stream_ids() == [] and store.export_stream("s") is None
    for series_id in ("t", "s"):
        store.create_version(new_model(series_id))
    state = store.acquire_stream("s", "me", 30)
    assert state is not None
    # The last two: anomalous, opening an incident (code 2) and with it (3).
    saved = [*points(0, 4), (240, 9.0, 1, 0.9, 2, 1.0, None, 2.0)]
    saved.append((300, -0.0, 1, 1.0, 3, 2.5, None, 4.25))
    assert store.save_streams("me", 30, [update(state, saved, 6)], 100) == set()
    assert store.acquire_stream("t", "me", 30) is not None  # a stream, nothing observed
    assert store.stream_ids() == ["s", "t"]
    exported = store.export_stream("s")
    assert exported is not None
    assert (exported.last_timestamp, exported.observed, exported.context_version) == (300, 6, 1)
    assert exported.context is not None and json.loads(exported.context) == {"recent": [6.0]}
    assert exported.points == saved
    assert [type(item) for item in exported.points[-1]] == [
        int,
        float,
        int,
        float,
        int,
        float,
        type(None),
        float,
    ]
    empty = store.export_stream("t")
    assert empty is not None and (empty.observed, empty.points, empty.context) == (0, [], None)


def test_a_stream_is_held_by_one_owner_at_a_time(store: ModelStore) -> None:
    store.create_version(new_model("s"))
    first = store.acquire_stream("s", "owner-a", lease_s=30)
    assert first is not None
    assert (first.last_timestamp, first.observed, first.context) == (None, 0, None)
    assert store.acquire_stream("s", "owner-b", lease_s=30) is None  # a's lease holds
    again = store.acquire_stream("s", "owner-a", lease_s=30)  # a takes it anew
    assert again is not None and again.token != first.token
    assert store.save_streams("owner-a", 30, [update(first, points(0, 3), 3)], 100) == {"s"}
    assert store.save_streams("owner-a", 30, [update(again, points(0, 3), 3)], 100) == set()
    store.release_streams("owner-a", {"s": again.token})
    taken = store.acquire_stream("s", "owner-b", lease_s=30)
    assert taken is not None
    assert (taken.last_timestamp, taken.observed) == (120, 3)
    assert (taken.context_version, taken.context) == (1, {"recent": [3.0]})
    # The former holder's saves are refused from now on.
    assert store.save_streams("owner-a", 30, [update(again, points(180, 1), 4)], 100) == {"s"}


def test_a_stream_whose_holder_stopped_renewing_can_be_taken_over(store: ModelStore) -> None:
    store.create_version(new_model("s"))
    assert store.acquire_stream("s", "gone", lease_s=0.2) is not None
    assert store.acquire_stream("s", "next", lease_s=30) is None
    time.sleep(0.3)
    assert store.acquire_stream("s", "next", lease_s=30) is not None


def test_saved_points_read_back_in_order_newest_kept(store: ModelStore) -> None:
    store.create_version(new_model("s"))
    state = store.acquire_stream("s", "me", lease_s=30)
    assert state is not None
    assert store.save_streams("me", 30, [update(state, points(0, 50), 50)], 1000) == set()
    assert store.save_streams("me", 30, [update(state, points(3000, 50), 100)], 1000) == set()
    timestamps, values = store.stream_points("s", after=-1, limit=1000)
    assert timestamps.tolist() == [60 * i for i in range(50)] + [3000 + 60 * i for i in range(50)]
    assert values.tolist() == [float(i) for i in range(50)] * 2
    timestamps, _ = store.stream_points("s", after=60 * 10, limit=5)
    assert timestamps.tolist() == [3000 + 60 * i for i in range(45, 50)]
    assert store.count_stream_points("s", after=60 * 48) == 51
    # Beyond keep_points (and its slack) the oldest points go.
    assert store.save_streams("me", 30, [update(state, points(9000, 100), 200)], 60) == set()
    timestamps, _ = store.stream_points("s", after=-1, limit=1000)
    assert timestamps.tolist() == [9000 + 60 * i for i in range(40, 100)]


def test_scored_points_page_through_a_window_with_every_field(store: ModelStore) -> None:
    store.create_version(new_model("s"))
    state = store.acquire_stream("s", "me", lease_s=30)
    assert state is not None
    saved: list[StreamPoint] = [
        (60 * i, float(i), 1 + i // 400, i / 1000, i % 7 == 0, i + 0.5, None if i % 2 else i - 1.0, i + 2.0)
        for i in range(1000)
    ]  # fmt: skip
    for start in range(0, 1000, 100):  # ten saves: ten chunks
        assert (
            store.save_streams(
                "me", 30, [update(state, saved[start : start + 100], start + 100)], 10_000
            )
            == set()
        )
    assert store.scored_points("s", -1, 10**12, 10_000) == saved
    page = store.scored_points("s", 60 * 149, 60 * 400, 120)
    assert page == saved[150:270]
    rest = store.scored_points("s", page[-1][0], 60 * 400, 120)
    assert rest == saved[270:390]
    anomalies = store.scored_points("s", -1, 10**12, 50, anomalies_only=True)
    assert anomalies == [point for point in saved if point[4]][:50]
    assert store.scored_points("s", 60 * 999, 10**12, 10) == []
    assert store.scored_points("missing", -1, 10**12, 10) == []


def test_points_older_than_the_history_window_go_by_whole_chunks(store: ModelStore) -> None:
    for series_id in ("a", "b"):
        store.create_version(new_model(series_id))
        state = store.acquire_stream(series_id, "me", lease_s=30)
        assert state is not None
        for start in (0, 6_000, 12_000):  # three saves: three chunks of 10 points, 540 s each
            store.save_streams(
                "me", 30, [update(state, points(start, 10), start // 600 + 10)], 1000
            )
    assert store.count_stream_points("a", after=-1) == 30
    # Newest point 12,540: a window of 6,000 s keeps what ends after 6,540.
    assert store.expire_stream_points(6_000) == 2  # the first chunk of each series
    assert [p[0] for p in store.scored_points("a", -1, 10**9, 100)][:1] == [6_000]
    assert store.count_stream_points("b", after=-1) == 20
    assert store.expire_stream_points(10**9) == 0


def test_a_deleted_series_loses_its_stream_and_its_holder_is_refused(store: ModelStore) -> None:
    store.create_version(new_model("s"))
    store.create_version(new_model("s"))
    state = store.acquire_stream("s", "me", lease_s=30)
    assert state is not None
    assert store.save_streams("me", 30, [update(state, points(0, 5), 5)], 100) == set()
    store.delete_version("s", 1)  # a version goes; the series' stream stays
    assert store.save_streams("me", 30, [update(state, points(300, 5), 10)], 100) == set()
    assert store.count_stream_points("s", after=-1) == 10
    store.delete_series("s")
    assert store.save_streams("me", 30, [update(state, points(600, 5), 15)], 100) == {"s"}
    assert store.count_stream_points("s", after=-1) == 0
    store.create_version(new_model("s"))  # the series again, from scratch
    fresh = store.acquire_stream("s", "me", lease_s=30)
    assert fresh is not None and (fresh.observed, fresh.last_timestamp) == (0, None)


def test_a_release_is_asked_of_the_holder(store: ModelStore) -> None:
    store.create_version(new_model("s"))
    assert store.acquire_stream("s", "holder", lease_s=30) is not None
    woken = threading.Event()
    store.watch_releases(woken.set)
    assert store.release_requests("holder") == []
    store.request_release("s", "asker")
    deadline = time.monotonic() + 5
    asked: list[str] = []
    while "s" not in asked:
        assert time.monotonic() < deadline, "the ask never reached the holder"
        asked += store.release_requests("holder")
        time.sleep(0.01)
    assert store.release_requests("holder") == []


def owners(store_url: str) -> set[str]:
    """The holders a store's lease table lists, read behind its back."""
    if store_url.startswith("sqlite:///"):
        lite = sqlite3.connect(store_url[len("sqlite:///") :])
        try:
            return {row[0] for row in lite.execute("SELECT owner FROM stream_owners")}
        finally:
            lite.close()
    with psycopg.connect(store_url) as connection:
        return {row[0] for row in connection.execute("SELECT owner FROM anomaly_stream_owners")}


def test_holders_gone_for_a_day_and_holding_nothing_are_forgotten(
    store: ModelStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anomaly_api.storage.postgresql.streams as postgresql_streams
    import anomaly_api.storage.sqlite_streams as sqlite_streams

    for module in (sqlite_streams, postgresql_streams):  # no forgetting while setting up
        monkeypatch.setattr(module, "FORGET_OWNERS_CHANCE", 0.0)
    store.create_version(new_model("s"))
    store.create_version(new_model("t"))
    held = store.acquire_stream("s", "gone-holding", lease_s=-100_000)  # lapsed long ago
    assert held is not None
    store.save_streams("gone-idle", -100_000, [], 10)  # a lease, and nothing held
    store.save_streams("recent-idle", -10, [], 10)  # lapsed, but not a day ago
    assert owners(store_url) == {"gone-holding", "gone-idle", "recent-idle"}
    for module in (sqlite_streams, postgresql_streams):
        monkeypatch.setattr(module, "FORGET_OWNERS_CHANCE", 1.0)
    store.save_streams("me", 30, [], 10)  # a heartbeat that forgets
    assert owners(store_url) == {"gone-holding", "recent-idle", "me"}


def test_api_keys_are_kept_as_digests_and_revoked_for_good(store: ModelStore) -> None:
    first = store.create_key("ci", "d1", ("read", "predict"))
    assert first.name == "ci" and first.scopes == ("read", "predict") and first.revoked_at is None
    store.create_key("admin", "d2", ("admin",))
    assert sorted(store.active_keys()) == [
        ("d1", "ci", ("read", "predict"), NO_LIMITS),
        ("d2", "admin", ("admin",), NO_LIMITS),
    ]
    with pytest.raises(InvalidInput, match="exists"):
        store.create_key("ci", "d3", ("read",))
    assert store.revoke_key("ci")
    assert not store.revoke_key("ci")
    assert not store.revoke_key("nobody")
    assert store.active_keys() == [("d2", "admin", ("admin",), NO_LIMITS)]
    listed = {record.name: record for record in store.list_keys()}
    assert listed["ci"].revoked_at is not None and listed["admin"].revoked_at is None
    # A revoked key's name stays taken: the list says who held it.
    with pytest.raises(InvalidInput, match="exists"):
        store.create_key("ci", "d4", ("read",))


def test_keys_keep_their_own_limits(store: ModelStore) -> None:
    limits = Limits(max_series=3, max_points=None, retention_days=0.5)
    assert store.create_key("tenant", "d1", ("write",), limits).limits == limits
    assert store.active_keys() == [("d1", "tenant", ("write",), limits)]
    assert store.list_keys()[0].limits == limits


def owned(series_id: str, owner: str | None, points: int = 10, **quota: int) -> NewModel:
    model = dataclasses.replace(new_model(series_id, points), created_by=owner)
    return dataclasses.replace(model, quota=Quota(owner, **quota)) if quota else model


def test_versions_remember_who_fitted_them_and_usage_counts_them(store: ModelStore) -> None:
    created = store.create_version(owned("a", "k1", points=10))
    assert created.created_by == "k1"
    store.create_version(owned("a", "k1", points=20))
    store.create_version(owned("b", "k1", points=5))
    store.create_version(owned("b", "k2", points=7))
    store.create_version(owned("c", None, points=3))
    assert store.get_model("a", 1) == created
    assert [r.created_by for r in store.list_versions("b")] == ["k1", "k2"]
    assert store.usage("k1", "a") == Usage(series=2, points=35, holds_series=True)
    assert store.usage("k1", "c") == Usage(series=2, points=35, holds_series=False)
    assert store.usage("k2") == Usage(series=1, points=7, holds_series=False)
    assert store.usage(None, "c") == Usage(series=1, points=3, holds_series=True)
    assert store.usage("nobody") == Usage(0, 0, False)
    store.delete_series("a")
    assert store.usage("k1") == Usage(series=1, points=5, holds_series=False)


def test_a_fit_over_its_keys_quota_is_refused_and_writes_nothing(store: ModelStore) -> None:
    store.create_version(owned("a", "k", points=10, max_series=2, max_points=50))
    store.create_version(owned("b", "k", points=10, max_series=2, max_points=50))
    with pytest.raises(QuotaExceeded, match="holds 2 series") as refused:
        store.create_version(owned("c", "k", points=10, max_series=2, max_points=50))
    assert refused.value.retry_after_s > 0
    assert store.latest_version("c") is None
    # A series the key holds takes new versions, up to the points quota.
    assert store.create_version(owned("a", "k", points=30, max_series=2)).version == 2
    with pytest.raises(QuotaExceeded, match="training points"):
        store.create_version(owned("a", "k", points=1, max_points=50))
    assert store.latest_version("a") == 2
    # Another key's quota is its own; and no quota, no check.
    assert store.create_version(owned("c", "other", points=10, max_series=1)).version == 1
    assert store.create_version(owned("c", "k", points=10)).version == 2


def test_concurrent_fits_of_one_key_cannot_overshoot_its_quota(store: ModelStore) -> None:
    outcomes: list[str] = []

    def fit(index: int) -> None:
        try:
            store.create_version(owned(f"s{index}", "k", points=10, max_series=5))
            outcomes.append("stored")
        except QuotaExceeded:
            outcomes.append("refused")

    threads = [threading.Thread(target=fit, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("stored") == 5
    assert store.usage("k").series == 5


def test_expired_versions_go_but_each_series_keeps_its_latest(store: ModelStore) -> None:
    for _ in range(3):
        store.create_version(owned("a", "k"))
    store.create_version(owned("b", "k"))
    store.create_version(owned("a", "other"))  # now the latest of "a", not "k"'s
    store.create_version(owned("c", None))
    store.create_version(owned("c", None))
    marker = store.change_marker()
    position = store.change_position()
    assert store.expire_versions("k", time.time() - 3600) == 0  # nothing that old
    assert store.expire_versions("k", time.time() + 1) == 3  # a1-a3; b1 is b's latest
    assert [r.version for r in store.list_versions("a")] == [4]
    assert [r.version for r in store.list_versions("b")] == [1]
    assert store.change_marker() != marker
    changes = store.changes_since(position)
    assert changes is not None and "a" in changes[1].deleted
    assert store.expire_versions(None, time.time() + 1, limit=5) == 1
    assert [r.version for r in store.list_versions("c")] == [2]
    assert store.count_series() == 3
    # A new version after an expiry still takes the next number.
    assert store.create_version(owned("a", "k")).version == 5


def test_versions_are_listed_a_page_at_a_time(store: ModelStore) -> None:
    for _ in range(7):
        store.create_version(new_model("s"))
    store.delete_version("s", 3)
    pages = [store.list_versions("s", after, 2) for after in (0, 2, 5, 7)]
    assert [[record.version for record in page] for page in pages] == [[1, 2], [4, 5], [6, 7], []]
    assert [record.version for record in store.list_versions("s", 4)] == [5, 6, 7]
    assert store.list_versions("s") == store.list_versions("s", 0, None)


def test_recent_streams_are_those_that_observed_points_newest_save_first(
    store: ModelStore,
) -> None:
    assert store.recent_stream_ids(10) == []
    for series_id in ("a", "b", "c"):
        store.create_version(new_model(series_id))
    states = {name: store.acquire_stream(name, "me", 30) for name in ("a", "b", "c")}
    assert all(state is not None for state in states.values())
    assert store.recent_stream_ids(10) == []  # held, nothing observed yet
    state_b, state_a = states["b"], states["a"]
    assert state_b is not None and state_a is not None
    assert store.save_streams("me", 30, [update(state_b, points(0, 3), 3)], 100) == set()
    time.sleep(0.01)
    assert store.save_streams("me", 30, [update(state_a, points(0, 2), 2)], 100) == set()
    assert store.recent_stream_ids(10) == ["a", "b"]
    assert store.recent_stream_ids(1) == ["a"]
