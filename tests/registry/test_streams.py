"""Live streams through the registry: each point is the continuation of the training data
and of every point observed since, whatever path it takes and whoever serves it."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS
from anomaly_api.errors import StoreUnavailable
from anomaly_api.registry import ModelRegistry, Prediction
from anomaly_api.storage import open_store

START = 1_691_000_000
STEP = 300


def training(points: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    timestamps = START + STEP * np.arange(points)
    values = 100 + 10 * np.sin(2 * np.pi * timestamps / 86_400) + rng.normal(0, 2, points)
    return timestamps, values


def stream(points: int = 300, seed: int = 2, after: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    timestamps = START + STEP * (after + np.arange(points))
    values = 100 + 10 * np.sin(2 * np.pi * timestamps / 86_400) + rng.normal(0, 2, points)
    values[points // 3 :: 41] += 35  # spikes
    values[2 * points // 3 :] += 15  # a level shift
    return timestamps, values


def registry_on(url: str, **options: object) -> ModelRegistry:
    defaults: dict[str, object] = {"stream_flush_s": 0}  # the tests flush by hand
    return ModelRegistry(open_store(url), **{**defaults, **options})  # type: ignore[arg-type]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'streams.db'}"


@pytest.fixture
def registry(url: str) -> Iterator[ModelRegistry]:
    opened = registry_on(url)
    yield opened
    opened.close()


def answers(predictions: list[Prediction]) -> list[tuple[object, ...]]:
    return [
        (
            p.version,
            p.anomaly,
            p.score,
            p.expected,
            p.lower,
            p.upper,
            p.observed,
            p.not_observed,
            p.incident,
        )
        for p in predictions
    ]


def predict_all(
    registry: ModelRegistry,
    series_id: str,
    timestamps: np.ndarray,
    values: np.ndarray,
    **kw: object,
) -> list[Prediction]:
    return [
        registry.predict(series_id, float(v), int(t), **kw)  # type: ignore[arg-type]
        for t, v in zip(timestamps, values, strict=True)
    ]


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_single_predicts_remember_the_stream_as_a_batch_does(url: str, detector: str) -> None:
    train_t, train_v = training()
    times, values = stream()
    registry = registry_on(url)
    try:
        registry.fit("one", train_t, train_v, detector, retrain=False)
        registry.fit("batch", train_t, train_v, detector, retrain=False)
        singles = predict_all(registry, "one", times, values)
        _, scores, observed = registry.score_batch("batch", times, values)
        assert observed.all() and all(p.observed for p in singles)
        assert [p.score for p in singles] == scores.score.tolist()
        assert [p.anomaly for p in singles] == scores.anomaly.tolist()
        assert [p.expected for p in singles] == np.asarray(scores.expected).tolist()
        # ... and both are what the detector says of the stream that continues its fit.
        loaded = registry.model("one")
        expected = loaded.detector.score(times, values)
        assert [p.score for p in singles] == expected.score.tolist()
        if detector in ("zscore", "hampel", "adaptive"):  # they learn: history matters
            forgetful = [
                loaded.detector.score_point(float(t), float(v))
                for t, v in zip(times, values, strict=True)
            ]
            assert [p.score for p in singles] != [p.score for p in forgetful]
    finally:
        registry.close()


def test_a_point_not_later_than_the_last_is_scored_but_not_remembered(
    registry: ModelRegistry,
) -> None:
    train_t, train_v = training()
    times, values = stream(50)
    registry.fit("s", train_t, train_v, "hampel")
    registry.fit("ref", train_t, train_v, "hampel")
    first = predict_all(registry, "s", times[:20], values[:20])
    last = int(times[19])
    repeated = registry.predict("s", 1e6, last)
    older = registry.predict("s", -1e6, last - 3 * STEP)
    at_the_fit = registry.predict("s", 5.0, int(train_t[-1]))
    assert (repeated.observed, repeated.not_observed) == (False, "repeated_timestamp")
    assert (older.observed, older.not_observed) == (False, "out_of_order")
    assert at_the_fit.not_observed == "out_of_order"
    assert repeated.anomaly and older.anomaly  # still scored, against the history
    rest = predict_all(registry, "s", times[20:], values[20:])
    reference = predict_all(registry, "ref", times, values)
    assert answers(first + rest) == answers(reference)


def test_the_contract_example_predicts_the_fit_s_last_timestamp(registry: ModelRegistry) -> None:
    registry.fit(
        "sensor_1",
        [1691000000, 1691000060, 1691000120, 1691000180, 1691000240],
        [10, 11, 9, 12, 15],
    )
    answer = registry.predict("sensor_1", 18.0, 1691000240)
    assert answer.anomaly and answer.expected == 11.4
    assert answer.not_observed == "repeated_timestamp"
    again = registry.predict("sensor_1", 18.0, 1691000240)
    assert answers([again]) == answers([answer])


def test_observe_false_is_a_what_if(registry: ModelRegistry) -> None:
    train_t, train_v = training()
    times, values = stream(60)
    for series_id in ("s", "ref"):
        registry.fit(series_id, train_t, train_v, "adaptive")
    with_what_ifs = []
    for t, v in zip(times, values, strict=True):
        what_if = registry.predict("s", float(v) + 50, int(t), observe=False)
        assert (what_if.observed, what_if.not_observed) == (False, "what_if")
        with_what_ifs.append(registry.predict("s", float(v), int(t)))
    _, what_ifs, observed = registry.score_batch("s", times + 10**6, values, observe=False)
    assert not observed.any()
    assert answers(with_what_ifs) == answers(predict_all(registry, "ref", times, values))
    later = registry.predict("s", 100.0, int(times[-1]) + STEP)
    assert answers([later]) == answers([registry.predict("ref", 100.0, int(times[-1]) + STEP)])
    assert len(what_ifs) == 60


def test_a_pinned_version_scores_with_its_parameters_and_the_series_history(
    registry: ModelRegistry,
) -> None:
    train_t, train_v = training()
    times, values = stream(120)
    registry.fit("s", train_t, train_v, "zscore", retrain=False)
    predict_all(registry, "s", times[:60], values[:60])
    registry.fit("s", train_t, train_v * 2, "zscore", {"threshold": 2.0}, retrain=False)
    pinned = predict_all(registry, "s", times[60:90], values[60:90], version=1)
    latest = predict_all(registry, "s", times[90:], values[90:])
    assert {p.version for p in pinned} == {1} and {p.version for p in latest} == {2}
    # Version 1 continued by every point the series observed after its training data:
    one = registry.model("s", 1).detector
    expected = one.score(times[:90], values[:90])
    assert [p.score for p in pinned] == expected.score[60:].tolist()
    # Version 2 (trained up to the same time) continued by the points after its training.
    two = registry.model("s", 2).detector
    assert [p.score for p in latest] == two.score(times[60:], values[60:]).score[30:].tolist()


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_a_clean_restart_goes_on_exactly(url: str, detector: str) -> None:
    train_t, train_v = training()
    times, values = stream()
    first = registry_on(url)
    first.fit("s", train_t, train_v, detector)
    first.fit("ref", train_t, train_v, detector)
    before = predict_all(first, "s", times[:150], values[:150])
    first.close()  # saves everything
    second = registry_on(url)
    try:
        after = predict_all(second, "s", times[150:], values[150:])
        reference = predict_all(second, "ref", times, values)
        assert answers(before + after) == answers(reference)
    finally:
        second.close()


def test_what_was_not_saved_when_a_process_dies_is_lost_and_nothing_else(url: str) -> None:
    train_t, train_v = training()
    times, values = stream(100)
    dying = registry_on(url, stream_lease_s=0.3)
    dying.fit("s", train_t, train_v, "hampel")
    predict_all(dying, "s", times[:40], values[:40])
    dying.streams.flush()  # a save
    predict_all(dying, "s", times[40:60], values[40:60])  # never saved: the process "dies"
    dying.streams._stop.set()
    time.sleep(0.4)  # its lease runs out
    successor = registry_on(url)
    try:
        resumed = predict_all(successor, "s", times[60:], values[60:])
        successor.fit("ref", train_t, train_v, "hampel")
        expected = predict_all(
            successor,
            "ref",
            np.concatenate([times[:40], times[60:]]),
            np.concatenate([values[:40], values[60:]]),
        )
        assert answers(resumed) == answers(expected[40:])
    finally:
        successor.close()
        dying.cache.store.close()


def test_series_beyond_the_stream_cache_are_saved_and_come_back_alike(url: str) -> None:
    train_t, train_v = training()
    times, values = stream(90)
    registry = registry_on(url, stream_cache_size=2)
    try:
        for series_id in ("a", "b", "c", "ref"):
            registry.fit(series_id, train_t, train_v, "adaptive")
        interleaved: dict[str, list[Prediction]] = {"a": [], "b": [], "c": []}
        for index in range(0, 90, 10):
            for series_id in interleaved:
                interleaved[series_id] += predict_all(
                    registry, series_id, times[index : index + 10], values[index : index + 10]
                )
                registry.streams.flush()  # evicted series are saved and let go here
            assert registry.streams.live() <= 2
        reference = answers(predict_all(registry, "ref", times, values))
        for series_id in interleaved:
            assert answers(interleaved[series_id]) == reference
    finally:
        registry.close()


def test_a_deleted_series_starts_its_history_afresh(registry: ModelRegistry) -> None:
    train_t, train_v = training()
    times, values = stream(40)
    registry.fit("s", train_t, train_v, "hampel")
    predict_all(registry, "s", times, values)
    registry.delete_series("s")
    registry.fit("s", train_t, train_v, "hampel")
    registry.fit("ref", train_t, train_v, "hampel")
    again = predict_all(registry, "s", times, values)
    assert all(p.observed for p in again)
    assert answers(again) == [
        (2, *rest[1:]) for rest in answers(predict_all(registry, "ref", times, values))
    ]


def test_a_series_deleted_by_another_process_is_forgotten_here(url: str) -> None:
    train_t, train_v = training()
    times, values = stream(40)
    first, second = registry_on(url), registry_on(url)
    try:
        first.fit("s", train_t, train_v, "hampel")
        predict_all(first, "s", times[:20], values[:20])
        second.delete_series("s")
        first.fit("s", train_t, train_v, "hampel")
        again = predict_all(first, "s", times[:20], values[:20])
        assert all(p.observed for p in again)  # the old history is gone
    finally:
        first.close()
        second.close()


def interleave(
    registries: list[ModelRegistry], series_id: str, times: np.ndarray, values: np.ndarray
) -> list[Prediction]:
    """One stream whose points go to each registry in turn, as a client talking to
    several replicas would send them."""
    return [
        registries[index % len(registries)].predict(series_id, float(v), int(t))
        for index, (t, v) in enumerate(zip(times, values, strict=True))
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_stream_spread_over_two_processes_scores_as_one_process(
    backend: str, url: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        url = request.getfixturevalue("postgresql_url")
    train_t, train_v = training()
    times, values = stream(30)
    # The flusher answers release requests: each registry hands the series to the other.
    one, two = registry_on(url, stream_flush_s=0.01), registry_on(url, stream_flush_s=0.01)
    try:
        one.fit("s", train_t, train_v, "adaptive")
        one.fit("ref", train_t, train_v, "adaptive")
        spread = interleave([one, two], "s", times, values)
        reference = predict_all(one, "ref", times, values)
        assert answers(spread) == answers(reference)
    finally:
        one.close()
        two.close()


def test_a_stream_taken_over_right_after_the_holders_retrain_goes_on_with_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retrain by the holder, then the stream taken over by a process that has not
    heard of the new version yet (its announcement still on its way, as between two
    replicas on PostgreSQL; here the taker's change marker is held still): the taker
    goes on with the new version, as one process would, rather than with the older one
    it believed latest."""
    train_t, train_v = training()
    times, values = stream(60)
    policy = {"every": 40, "window": 300}
    one, two = registry_on(url, stream_flush_s=0.01), registry_on(url, stream_flush_s=0.01)
    try:
        one.fit("s", train_t, train_v, "adaptive", retrain=policy)
        one.fit("ref", train_t, train_v, "adaptive", retrain=policy)
        assert two.predict("s", float(values[0]), int(times[0])).version == 1  # two knows v1
        held_still = two.store.change_marker()
        monkeypatch.setattr(two.store, "change_marker", lambda: held_still)
        # one takes the stream back and observes up to the retrain (after the 40th point).
        first = predict_all(one, "s", times[1:40], values[1:40])
        assert [p.version for p in first][-1] == 1
        # two has not polled for changes: the stream it takes over goes on with version 2.
        rest = predict_all(two, "s", times[40:], values[40:])
        reference = predict_all(one, "ref", times, values)
        assert [p.version for p in rest] == [2] * 20
        assert answers(first + rest) == answers(reference[1:])
        assert [record.version for record in one.versions("s")] == [1, 2]
    finally:
        one.close()
        two.close()


def test_observing_answers_503_when_unsaved_points_reach_their_cap(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_t, train_v = training()
    times, values = stream(40)
    registry = registry_on(url, stream_max_pending=1000)
    registry.streams.max_pending = 10  # a small cap, to reach it quickly
    try:
        registry.fit("s", train_t, train_v, "zscore")
        predict_all(registry, "s", times[:10], values[:10])

        def down(*args: object) -> set[str]:
            raise StoreUnavailable("the store is down")

        monkeypatch.setattr(registry.store, "save_streams", down)
        with pytest.raises(StoreUnavailable, match="down"):
            registry.streams.flush()
        assert registry.streams.pending() == 10
        with pytest.raises(StoreUnavailable, match="observations cannot be saved"):
            registry.predict("s", float(values[10]), int(times[10]))
        with pytest.raises(StoreUnavailable, match="observations cannot be saved"):
            registry.score_batch("s", times[10:12], values[10:12])
        assert registry.predict("s", 1.0, int(times[10]), observe=False).not_observed == "what_if"
        monkeypatch.undo()
        registry.streams.flush()
        assert registry.streams.pending() == 0
        assert registry.predict("s", float(values[10]), int(times[10])).observed
    finally:
        registry.close()


def test_the_fast_path_answers_only_what_the_slow_path_would(registry: ModelRegistry) -> None:
    train_t, train_v = training()
    times, values = stream(40)
    registry.fit("s", train_t, train_v, "zscore")
    registry.fit("ref", train_t, train_v, "zscore")
    assert registry.predict_cached("s", float(values[0]), int(times[0])) is None  # cold
    mixed = [registry.predict("s", float(values[0]), int(times[0]))]
    for t, v in zip(times[1:], values[1:], strict=True):
        mixed.append(
            registry.predict_cached("s", float(v), int(t))
            or registry.predict("s", float(v), int(t))
        )
    assert answers(mixed) == answers(predict_all(registry, "ref", times, values))
    assert registry.predict_cached("s", math.nan, int(times[-1]) + STEP) is None


def test_concurrent_predicts_of_one_series_each_join_the_history_once(
    registry: ModelRegistry,
) -> None:
    train_t, train_v = training()
    times, values = stream(200)
    registry.fit("s", train_t, train_v, "zscore")
    results: list[Prediction] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for index in range(offset, 200, 4):
            answer = registry.predict("s", float(values[index]), int(times[index]))
            with lock:
                results.append(answer)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entry = registry.streams.cached("s")
    assert entry is not None
    observed = sum(p.observed for p in results)
    assert entry.observed == observed and len(results) == 200


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_save_committed_but_not_yet_acknowledged_is_not_counted_twice(
    registry: ModelRegistry,
) -> None:
    """The flusher writes without holding the series' lock; between its commit and its
    acknowledgement the points are both in the store and unsaved here."""
    train_t, train_v = training()
    times, values = stream(40)
    registry.fit("s", train_t, train_v, "hampel", retrain=False)
    predict_all(registry, "s", times[:20], values[:20])
    registry.streams.flush()
    predict_all(registry, "s", times[20:], values[20:])
    entry = registry.streams.cached("s")
    assert entry is not None
    after = int(train_t[-1])
    before_t, before_v = registry.streams.history(entry, after, 1000)
    snapshot = registry.streams._snapshot(entry)  # what the flusher does...
    registry.store.save_streams(registry.streams.owner, 10, [snapshot.update], 10_000)
    with entry.lock:  # ... and what a retrain or a rebuild reads before it is told
        during_t, during_v = registry.streams.history(entry, after, 1000)
        entry.model = None  # as if another version had been in use: rebuild
        registry.streams.ready(entry, registry.model("s", 1))
    assert during_t.tolist() == before_t.tolist() == times.tolist()
    assert during_v.tolist() == before_v.tolist()
    assert entry.since_fit == 40


def test_a_save_of_an_older_snapshot_never_lands_after_a_newer_one(url: str) -> None:
    """The flusher snapshots a series, then a request's verify() saves a newer state of
    it while the flusher's save is still on its way: the store must end with the newer
    state, not the older one written last."""
    train_t, train_v = training()
    times, values = stream(20)
    registry = registry_on(url)
    try:
        registry.fit("s", train_t, train_v, "zscore")
        predict_all(registry, "s", times[:10], values[:10])
        streams, store = registry.streams, registry.streams.store
        entry = streams.entry("s")
        original = store.save_streams
        flusher_saving, go_on = threading.Event(), threading.Event()

        def slow_first_save(*args: object, **kwargs: object) -> set[str]:
            if threading.current_thread().name == "slow-flusher":
                flusher_saving.set()
                go_on.wait(5)
            return original(*args, **kwargs)  # type: ignore[arg-type]

        store.save_streams = slow_first_save  # type: ignore[method-assign]
        flusher = threading.Thread(target=streams.flush, name="slow-flusher")
        flusher.start()
        assert flusher_saving.wait(5)  # its snapshot holds the first 10 points
        predict_all(registry, "s", times[10:], values[10:])  # newer state in memory
        threading.Timer(0.3, go_on.set).start()
        assert streams.verify(entry)  # waits for the flusher's save, then saves its own
        flusher.join(5)
        state = store.stream_state("s")
        assert state is not None
        assert (state.last_timestamp, state.observed) == (int(times[-1]), 20)
    finally:
        registry.close()
