from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.errors import (
    InvalidInput,
    InvalidParameter,
    InvalidSeriesId,
    SeriesNotFound,
    VersionNotFound,
)
from anomaly_api.registry import FREEZE_EVERY, ModelRegistry
from anomaly_api.storage import ModelRecord, NewModel, open_store

TIMESTAMPS = [1691000000, 1691000060, 1691000120, 1691000180, 1691000240]
VALUES = [10.0, 11.0, 9.0, 12.0, 15.0]


def make_registry(path: Path, **options: int) -> ModelRegistry:
    return ModelRegistry(open_store(f"sqlite:///{path}"), **options)  # type: ignore[arg-type]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ModelRegistry]:
    opened = make_registry(tmp_path / "r.db")
    yield opened
    opened.close()


def test_fit_then_predict_explains_the_answer(registry: ModelRegistry) -> None:
    record = registry.fit("sensor_1", TIMESTAMPS, VALUES)
    assert (record.version, record.points_used, record.detector) == (1, 5, "zscore")
    prediction = registry.predict("sensor_1", 18.0, 1691000240)
    assert prediction.anomaly is True
    assert prediction.direction == "above"
    assert prediction.version == 1
    assert prediction.expected == pytest.approx(11.4)
    assert prediction.lower is not None and prediction.upper is not None
    assert prediction.lower < prediction.expected < prediction.upper < 18.0
    assert prediction.threshold == 3.0


def test_explicit_and_latest_versions(registry: ModelRegistry) -> None:
    registry.fit("s", TIMESTAMPS, VALUES)
    registry.fit("s", TIMESTAMPS, [100.0, 101.0, 99.0, 102.0, 100.0])
    assert registry.predict("s", 10.0, 0).version == 2
    assert registry.predict("s", 10.0, 0).anomaly is True
    assert registry.predict("s", 10.0, 0, version=1).anomaly is False
    with pytest.raises(VersionNotFound, match="no version 3 \\(latest is 2\\)"):
        registry.predict("s", 10.0, 0, version=3)
    with pytest.raises(SeriesNotFound, match="'other'"):
        registry.predict("other", 10.0, 0)


def test_fifty_concurrent_fits_get_versions_one_to_fifty(registry: ModelRegistry) -> None:
    versions: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def fit() -> None:
        barrier.wait()
        version = registry.fit("hot", TIMESTAMPS, VALUES).version
        with lock:
            versions.append(version)

    threads = [threading.Thread(target=fit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 51))
    assert registry.predict("hot", 10.0, 0).version == 50


def test_latest_follows_fits_made_by_another_registry(tmp_path: Path) -> None:
    first = make_registry(tmp_path / "shared.db")
    second = make_registry(tmp_path / "shared.db")
    try:
        first.fit("s", TIMESTAMPS, VALUES)
        assert second.predict("s", 10.0, 0).version == 1  # now cached in second
        first.fit("s", TIMESTAMPS, VALUES)
        assert second.predict("s", 10.0, 0).version == 2
        first.delete_version("s", 2)
        assert second.predict("s", 10.0, 0).version == 1
        with pytest.raises(VersionNotFound):
            second.predict("s", 10.0, 0, version=2)
        first.delete_series("s")
        with pytest.raises(SeriesNotFound):
            second.predict("s", 10.0, 0, version=1)
    finally:
        first.close()
        second.close()


def test_cache_is_bounded_and_still_answers(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r.db", model_cache_size=3)
    try:
        for index in range(10):
            registry.fit(f"s{index}", TIMESTAMPS, VALUES)
        for index in range(10):
            assert registry.predict(f"s{index}", 10.0, 0).version == 1
        assert registry.health()["models_cached"] <= 3
    finally:
        registry.close()


def test_training_points_are_capped(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r.db", training_points_cap=100)
    try:
        registry.fit("s", np.arange(1000), np.arange(1000.0))
        loaded, series = registry.training_data("s")
        assert loaded.record.points_used == 1000
        assert len(series) == 100
        assert series.values[-1] == 999.0
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.fit("a/b", TIMESTAMPS, VALUES), InvalidSeriesId),
        (lambda r: r.fit("", TIMESTAMPS, VALUES), InvalidSeriesId),
        (lambda r: r.fit("s", TIMESTAMPS, VALUES, detector="nope"), InvalidParameter),
        (lambda r: r.fit("s", TIMESTAMPS[:4], VALUES[:4]), InvalidInput),
        (lambda r: r.versions("never"), SeriesNotFound),
        (lambda r: r.delete_series("never"), SeriesNotFound),
        (lambda r: r.delete_version("never", 1), SeriesNotFound),
    ],
)
def test_domain_errors(
    registry: ModelRegistry, call: Callable[[ModelRegistry], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(registry)


def test_health_counts_series_in_the_store(tmp_path: Path) -> None:
    first = make_registry(tmp_path / "shared.db")
    second = make_registry(tmp_path / "shared.db")
    try:
        first.fit("a", TIMESTAMPS, VALUES)
        first.fit("b", TIMESTAMPS, VALUES)
        health = second.health()
        assert health["series_trained"] == 2
        assert health["status"] == "ok"
        assert health["training_latency_ms"]["count"] == 0
        assert first.health()["training_latency_ms"]["count"] == 2
    finally:
        first.close()
        second.close()


def test_fast_path_never_serves_what_another_process_changed(tmp_path: Path) -> None:
    first = make_registry(tmp_path / "shared.db")
    second = make_registry(tmp_path / "shared.db")
    try:
        first.fit("s", TIMESTAMPS, VALUES)
        assert first.predict_cached("s", 10.0, 0) is None  # latest not resolved yet
        assert first.predict("s", 10.0, 0).version == 1
        cached = first.predict_cached("s", 10.0, 0)
        assert cached is not None and cached.version == 1
        second.fit("s", TIMESTAMPS, VALUES)
        assert first.predict_cached("s", 10.0, 0) is None  # the change marker moved
        assert first.predict("s", 10.0, 0).version == 2
        second.delete_version("s", 2)
        assert first.predict_cached("s", 10.0, 0, version=2) is None
        with pytest.raises(VersionNotFound):
            first.predict("s", 10.0, 0, version=2)
    finally:
        first.close()
        second.close()


def test_another_process_s_commits_make_this_one_forget_only_their_series(
    tmp_path: Path,
) -> None:
    first = make_registry(tmp_path / "shared.db")
    second = make_registry(tmp_path / "shared.db")
    try:
        for series_id in ("a", "b", "c"):
            second.fit(series_id, TIMESTAMPS, VALUES)
            assert first.predict(series_id, 10.0, 0).version == 1
            assert first.predict(series_id, 10.0, 0, version=1).version == 1
        second.fit("a", TIMESTAMPS, VALUES)
        second.delete_series("b")
        assert first.predict_cached("c", 10.0, 0) is None  # the marker moved: sync first
        assert first.predict("a", 10.0, 0).version == 2
        with pytest.raises(SeriesNotFound):
            first.predict("b", 10.0, 0, version=1)
        reads: list[str] = []
        original = first.store.get_model

        def counted(series_id: str, version: int | None = None) -> ModelRecord | None:
            reads.append(series_id)
            return original(series_id, version)

        first.store.get_model = counted  # type: ignore[method-assign]
        assert first.predict_cached("c", 10.0, 0) is not None  # c stayed cached
        assert first.predict_cached("c", 10.0, 0, version=1) is not None
        assert reads == []
    finally:
        first.close()
        second.close()


def test_a_version_deleted_while_it_was_being_fitted_is_not_cached(tmp_path: Path) -> None:
    registry = make_registry(tmp_path / "r.db")
    store = registry.store
    original = store.create_version

    def create_then_delete(model: NewModel) -> ModelRecord:
        record = original(model)
        store.delete_version(model.series_id, record.version)
        registry.cache.sync()  # the deleting request notices its own delete
        return record

    try:
        registry.fit("s", TIMESTAMPS, VALUES)
        store.create_version = create_then_delete  # type: ignore[method-assign]
        registry.fit("s", TIMESTAMPS, VALUES)
        store.create_version = original  # type: ignore[method-assign]
        assert registry.predict_cached("s", 10.0, 0, version=2) is None
        with pytest.raises(VersionNotFound):
            registry.predict("s", 10.0, 0, version=2)
        assert registry.predict("s", 10.0, 0).version == 1
    finally:
        registry.close()


def test_cached_models_are_frozen_out_of_full_collections_as_the_cache_grows(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(
        open_store(f"sqlite:///{tmp_path / 'f.db'}"), model_cache_size=100, freeze_models=True
    )
    try:
        frozen_before = gc.get_freeze_count()
        for _ in range(FREEZE_EVERY - 1):  # as if that many models had been cached
            registry.cache.changed(inserted=True)
        assert gc.get_freeze_count() == frozen_before  # not yet
        registry.fit("s", TIMESTAMPS, VALUES)  # the FREEZE_EVERY-th model cached
        assert gc.get_freeze_count() > frozen_before
    finally:
        registry.close()
        gc.unfreeze()


def test_registries_leave_the_collector_alone_unless_asked(registry: ModelRegistry) -> None:
    frozen_before = gc.get_freeze_count()
    for _ in range(FREEZE_EVERY):
        registry.cache.changed(inserted=True)
    registry.fit("s", TIMESTAMPS, VALUES)
    assert gc.get_freeze_count() == frozen_before


@pytest.mark.parametrize("detector", ["zscore", "robust", "seasonal", "hampel", "adaptive"])
@pytest.mark.parametrize("direction", ["both", "upper", "lower"])
def test_a_cached_predict_gives_the_detector_s_own_answer_bit_for_bit(
    registry: ModelRegistry, detector: str, direction: str
) -> None:
    rng = np.random.default_rng(7)
    timestamps = np.arange(200, dtype=np.int64) * 60 + 1_691_000_000
    registry.fit("s", timestamps, rng.normal(10.0, 2.0, 200), detector, {"direction": direction})
    loaded = registry.model("s")
    stream = loaded.detector.initial_context()
    values = [*rng.normal(10.0, 6.0, 50), 0.0, -0.0, 1e308, -1e308, 5e-324, 10.0]
    for offset, value in enumerate(values):
        stamp = float(timestamps[-1] + 60 * (offset + 1))
        expected = loaded.detector.observe_one(stream, stamp, float(value))
        answer = registry.predict("s", float(value), stamp)
        assert (answer.anomaly, answer.score, answer.expected) == (
            expected.anomaly,
            expected.score,
            expected.expected,
        )
        assert answer.lower == (expected.lower if math.isfinite(expected.lower) else None)
        assert answer.upper == (expected.upper if math.isfinite(expected.upper) else None)
        assert answer.observed and answer.not_observed is None
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidInput, match="finite"):
            registry.predict("s", bad, 0.0)
