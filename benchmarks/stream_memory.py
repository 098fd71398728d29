"""Memory per live series, and what a cold series' first predict costs, per detector.

Usage: ``python benchmarks/stream_memory.py [--series 2000] [--points 2016] [--out DIR]``

For each detector, in one process (tracemalloc counts Python's allocations):

1. ``--series`` series are fitted on ``--points`` points of 5-minute data each (a week:
   the seasonal profile is a daily one) into a fresh store, in a registry whose caches
   hold them all;
2. a new registry on that store (an empty process, as after a restart) gets one predict
   per series, timed: the **cold first predict** (model read from the store, stream taken
   and its context built);
3. a second predict per series, timed: the **warm predict**;
4. the streams are saved (so no point is waiting in memory), and the memory the live
   streams hold is measured: each series' :class:`~anomaly_api.registry.streams.LiveStream`
   with its context, lock and bookkeeping, by tracemalloc (what was allocated while the
   streams were made live, minus the models, which are measured on their own).

Prints a markdown table and writes ``stream_memory.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from anomaly_api.detectors import DETECTORS
from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store

START = 1_800_000_000


def measure(detector: str, series: int, points: int, scratch: Path) -> dict[str, Any]:
    url = f"sqlite:///{scratch / f'{detector}.db'}"
    rng = np.random.default_rng(1)
    timestamps = START - 300 * np.arange(points, 0, -1)
    daily = 10 * np.sin(2 * np.pi * timestamps / 86_400)
    fitter = ModelRegistry(open_store(url, durable=False), stream_flush_s=0)
    try:
        for index in range(series):
            values = 100 + daily + rng.normal(0, 2, points)
            fitter.fit(f"s{index}", timestamps, values, detector, retrain=False)
    finally:
        fitter.close()
    registry = ModelRegistry(
        open_store(url, durable=False),
        stream_flush_s=0,
        model_cache_size=series + 10,
        stream_cache_size=series + 10,
    )
    ids = [f"s{index}" for index in range(series)]
    try:
        # Models first (their own figure), then the streams on top.
        gc.collect()
        tracemalloc.start()
        before_models = tracemalloc.get_traced_memory()[0]
        for series_id in ids:
            registry.model(series_id)
        gc.collect()
        models = tracemalloc.get_traced_memory()[0] - before_models
        tracemalloc.stop()

        cold: list[float] = []
        gc.collect()
        tracemalloc.start()
        before_streams = tracemalloc.get_traced_memory()[0]
        for series_id in ids:
            started = time.perf_counter()
            registry.predict(series_id, 100.0, START)
            cold.append(time.perf_counter() - started)
        registry.streams.flush()  # nothing waits unsaved
        gc.collect()
        streams = tracemalloc.get_traced_memory()[0] - before_streams
        tracemalloc.stop()

        warm: list[float] = []
        for series_id in ids:
            started = time.perf_counter()
            answer = registry.predict_cached(series_id, 100.0, START + 300)
            if answer is None:
                answer = registry.predict(series_id, 100.0, START + 300)
            warm.append(time.perf_counter() - started)
        context = registry.streams.cached(ids[0])
        assert context is not None
        assert context.context is not None
        context_json = len(json.dumps(context.context.to_json()))
    finally:
        registry.close()
    return {
        "detector": detector,
        "series": series,
        "training_points": points,
        "stream_bytes_per_series": streams / series,
        "model_bytes_per_series": models / series,
        "context_json_bytes": context_json,
        "cold_first_predict_ms": 1000 * statistics.median(cold),
        "cold_first_predict_p95_ms": 1000 * sorted(cold)[int(0.95 * (len(cold) - 1))],
        "warm_predict_ms": 1000 * statistics.median(warm),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--points", type=int, default=2016)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="anomaly-memory-") as scratch:
        for detector in sorted(DETECTORS):
            rows.append(measure(detector, args.series, args.points, Path(scratch)))
            print(json.dumps(rows[-1]), file=sys.stderr)
    lines = [
        f"{args.series} series per detector, {args.points} training points each "
        "(tracemalloc; medians of the per-series timings, in-process, SQLite)",
        "",
        "| detector | live stream, KiB/series | cached model, KiB/series | context as JSON, bytes "
        "| cold first predict, ms (p95) | warm predict, ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['detector']} | {row['stream_bytes_per_series'] / 1024:.2f} "
            f"| {row['model_bytes_per_series'] / 1024:.1f} | {row['context_json_bytes']} "
            f"| {row['cold_first_predict_ms']:.2f} ({row['cold_first_predict_p95_ms']:.2f}) "
            f"| {row['warm_predict_ms']:.3f} |"
        )
    print("\n".join(lines))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stream_memory.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
