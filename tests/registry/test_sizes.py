"""The cache's byte budget: model size estimates against tracemalloc, the LRU's byte
accounting, and a registry that keeps its cache under ``model_cache_bytes``."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, Series
from anomaly_api.registry import ModelRegistry
from anomaly_api.registry.lru import LRU
from anomaly_api.registry.sizes import OBJECT_BYTES, model_bytes
from anomaly_api.storage import open_store

POINTS = 4 * 7 * 288  # four weeks of 5-minute points


def _series() -> Series:
    steps = np.arange(POINTS)
    values = (
        10
        + np.sin(steps * 2 * np.pi / 288)
        + 0.5 * np.sin(steps * 2 * np.pi / 2016)
        + np.random.default_rng(0).normal(0, 0.2, POINTS)
    )
    return Series.from_arrays(1_700_000_000 + steps * 300, values)


@pytest.mark.parametrize(
    ("name", "params"),
    [("zscore", {}), ("seasonal", {}), ("adaptive", {}), ("hampel", {}), ("pattern", {})],
)
def test_estimates_cover_what_a_model_holds(name: str, params: dict[str, Any]) -> None:
    fitted = DETECTORS[name](params).fit(_series())
    state = fitted.state()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        models = [DETECTORS[name].from_state(fitted.params, state) for _ in range(10)]
        gc.collect()
        each = (tracemalloc.get_traced_memory()[0] - before) / len(models)
    finally:
        tracemalloc.stop()
    estimate = model_bytes(models[0])
    # the detector's own objects at least; at most twice them plus the fixed part (twice)
    assert each <= estimate <= 2 * each + 2 * OBJECT_BYTES, (each, estimate)


def test_the_lru_keeps_its_bytes_under_the_budget() -> None:
    cache: LRU[str, bytes] = LRU(100, max_bytes=10, weigh=len)
    cache["a"], cache["b"] = b"xxxx", b"xxxx"
    assert cache.bytes == 8
    cache["c"] = b"xxxx"  # 12 > 10: the least recently used goes
    assert list(cache) == ["b", "c"] and cache.bytes == 8
    cache["b"] = b"x"  # replacing re-weighs
    assert cache.bytes == 5
    assert cache.pop("b") == b"x" and cache.bytes == 4
    del cache["c"]
    assert cache.bytes == 0 and not cache
    cache["big"] = b"x" * 50  # alone over the budget: still kept, being the newest
    assert list(cache) == ["big"] and cache.bytes == 50
    cache.popitem()
    assert cache.bytes == 0
    cache["d"] = b"xx"
    cache.clear()
    assert cache.bytes == 0


def test_a_registry_keeps_its_cache_under_the_byte_budget(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}", durable=False)
    series = _series()
    budget = 200 * 1024
    registry = ModelRegistry(store, model_cache_bytes=budget, stream_flush_s=0)
    try:
        for index in range(30):
            registry.fit(f"s{index}", series.timestamps, series.values, detector="seasonal")
        for index in range(30):
            registry.model(f"s{index}")
        cache = registry.cache
        assert 0 < cache.models.bytes <= budget and 0 < cache.latest.bytes <= budget
        assert len(cache.models) < 30  # ~20 KiB each: not all of them fit
        assert registry.model("s0").version == 1  # dropped ones load again
    finally:
        registry.close()
