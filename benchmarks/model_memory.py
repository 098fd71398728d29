"""Memory per cached model for models fitted on four weeks of 5-minute points (daily and
weekly cycles), where seasonal models keep a profile per slot of the week.

Usage: ``python benchmarks/model_memory.py``

For each detector: 100 models are fitted into a throwaway SQLite store, then 95 of them
are loaded into a fresh registry's cache under ``tracemalloc`` (numpy reports its arrays
to it too); printed is the traced growth per model. ``anomaly-api bench --scenario
scaling`` measures the same with 1,000 training points, where no weekly cycle exists.
"""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
from typing import Any

import numpy as np

from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store

POINTS = 4 * 7 * 288  # four weeks of 5-minute points
CASES: list[tuple[str, dict[str, Any]]] = [
    ("zscore", {}),
    ("adaptive", {}),
    ("seasonal", {}),
    ("seasonal", {"period": "daily"}),
    ("pattern", {}),
]


def per_model_kib(directory: str, detector: str, params: dict[str, Any]) -> float:
    timestamps = 1_700_000_000 + np.arange(POINTS, dtype=np.int64) * 300
    rng = np.random.default_rng(0)
    steps = np.arange(POINTS)
    url = f"sqlite:///{directory}/{detector}-{len(params)}.db"
    ids = [f"s{index}" for index in range(100)]
    writer = ModelRegistry(open_store(url, durable=False), training_points_cap=0, stream_flush_s=0)
    for series_id in ids:
        values = (
            10
            + np.sin(steps * 2 * np.pi / 288)
            + 0.5 * np.sin(steps * 2 * np.pi / 2016)
            + rng.normal(0, 0.2, POINTS)
        )
        writer.fit(series_id, timestamps, values, detector=detector, params=params)
    writer.close()
    registry = ModelRegistry(
        open_store(url, durable=False), model_cache_size=1000, stream_flush_s=0
    )
    try:
        for series_id in ids[:5]:  # first touch: code paths, connections
            registry.model(series_id)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for series_id in ids[5:]:
            registry.model(series_id)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    finally:
        registry.close()
    return used / (len(ids) - 5) / 1024


def main() -> None:
    directory = tempfile.mkdtemp(prefix="anomaly-model-memory-")
    for detector, params in CASES:
        kib = per_model_kib(directory, detector, params)
        print(f"{detector:9s} {params!s:22s} {kib:6.1f} KiB per cached model")


if __name__ == "__main__":
    main()
