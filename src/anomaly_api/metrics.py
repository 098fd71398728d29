"""Prometheus metrics: the objects, and the few functions the rest of the code calls.

No FastAPI here: the registry counts fits, scored points, flagged anomalies and cache
lookups; the HTTP layer calls :func:`observe_request` once per request and serves
:func:`render` at ``GET /metrics``.

Several workers
---------------
When ``PROMETHEUS_MULTIPROC_DIR`` names a directory, prometheus_client keeps every value
in a memory-mapped file there, one set per process, and :func:`render` adds up the files
of all workers, so whichever worker answers ``/metrics`` describes the whole server.
prometheus_client decides this **when it is first imported**, so the variable must be in
the environment before then: ``anomaly-api serve`` creates a fresh directory and exports
it before any worker starts. A directory given from outside must be emptied between runs,
or the counters of earlier runs are added in. The cache size gauge counts live workers
only (``livesum``): files left by workers that died are dropped when metrics are rendered.

Cheap on the hot path
---------------------
In multiprocess mode every increment is a locked write to a memory-mapped file, about
2 µs, and a cached predict makes five of them: more than the predict itself. So the
recording functions below add to a small in-process tally (a dict update under a lock),
and the tally is written to the metric values at most :data:`FLUSH_INTERVAL_S` after
its first entry: by the next recording call once that time has passed, or by a daemon
thread when the worker goes quiet, and always before this process renders ``/metrics``.
A scrape answered by another worker may therefore miss the last second of this one's
counts; Prometheus scrapes every 15 s or so, and nothing is ever lost.

Label values are bounded: ``handler`` is a route template (``/predict/{series_id}``),
never a raw path; ``detector`` a registered detector name; ``method`` one of the HTTP
methods or ``OTHER``.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from anomaly_api.telemetry import process_alive

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Multiprocess mode is what prometheus_client chose at its import, which may predate ours.
_RUN_DIR = (
    os.environ.get(MULTIPROC_DIR_ENV) or None
    if values.ValueClass is not values.MutexValue
    else None
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Seconds; finer than prometheus_client's default, as a cached predict takes under 1 ms."""

# Its ``_count`` is the number of requests. A separate counter would add half again to
# the cost of every request: in multiprocess mode each increment is ~1.5 µs (lock, pid
# check, write to the memory map), and an observation already makes two.
HTTP_DURATION = Histogram(
    "anomaly_http_request_duration_seconds",
    "HTTP requests and their time to the end of the response, by route template, "
    "method and status.",
    ["handler", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
FITS = Counter("anomaly_fits", "Model versions fitted and stored, by detector.", ["detector"])
POINTS_SCORED = Counter(
    "anomaly_points_scored",
    "Points scored (predicts and batch scoring), by detector.",
    ["detector"],
)
ANOMALIES_FLAGGED = Counter(
    "anomaly_anomalies_flagged", "Scored points flagged as anomalous, by detector.", ["detector"]
)
CACHE_HITS = Counter("anomaly_model_cache_hits", "Model lookups answered from the memory cache.")
CACHE_MISSES = Counter("anomaly_model_cache_misses", "Model lookups that had to read the store.")
CACHE_SIZE = Gauge(
    "anomaly_model_cache_size",
    "Fitted models held in memory, summed over live workers.",
    multiprocess_mode="livesum",
)

FLUSH_INTERVAL_S = 1.0
"""Longest time a recorded count waits in the process before reaching the metric files."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_requests: dict[tuple[str, str, int], Histogram] = {}
_by_detector: dict[tuple[Counter, str], Counter] = {}
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db")


def run_dir() -> Path | None:
    """The directory the server's workers share (``PROMETHEUS_MULTIPROC_DIR``), if any."""
    return None if _RUN_DIR is None else Path(_RUN_DIR)


class _Tally:
    """Increments recorded but not yet written to the metric values (see module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._observations: dict[Histogram, list[float]] = {}
        self._due = 0.0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    def add(self, value: Any, amount: float) -> None:
        """Add ``amount`` to a counter child (or a histogram's sum)."""
        with self._lock:
            self._counts[value] = self._counts.get(value, 0.0) + amount
            self._arm()

    def add_many(self, values: list[Any]) -> None:
        """Add 1 to each of ``values`` (counter children), under one lock."""
        with self._lock:
            counts = self._counts
            for value in values:
                counts[value] = counts.get(value, 0.0) + 1
            self._arm()

    def observe(self, histogram: Histogram, seconds: float) -> None:
        """Count ``seconds`` in its bucket of ``histogram`` (a labelled child)."""
        with self._lock:
            buckets = self._observations.get(histogram)
            if buckets is None:
                buckets = self._observations[histogram] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            buckets[-1] += seconds
            self._arm()

    def add_many_and_observe(self, values: list[Any], histogram: Histogram, seconds: float) -> None:
        """:meth:`add_many` and :meth:`observe` under one lock (the cached predict)."""
        with self._lock:
            counts = self._counts
            for value in values:
                counts[value] = counts.get(value, 0.0) + 1
            buckets = self._observations.get(histogram)
            if buckets is None:
                buckets = self._observations[histogram] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
            buckets[-1] += seconds
            self._arm()

    def _arm(self) -> None:
        """Called under the lock after a change: flush if due, else make sure it will be."""
        now = time.monotonic()
        if self._due == 0.0:
            self._due = now + FLUSH_INTERVAL_S
            self._wake.set()
        elif now >= self._due:
            self._write()

    def flush(self) -> None:
        """Write everything tallied so far."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        counts, observations = self._counts, self._observations
        self._counts, self._observations, self._due = {}, {}, 0.0
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, buckets in observations.items():
            # Histogram.observe() adds 1 to one bucket and the value to the sum; this
            # adds many at once to the same private values (prometheus_client is pinned,
            # and tests/test_metrics.py checks the result matches observe()).
            for index, count in enumerate(buckets[:-1]):
                if count:
                    histogram._buckets[index].inc(count)
            histogram._sum.inc(buckets[-1])

    def start_flusher(self) -> None:
        """Flush from a daemon thread when the worker goes quiet (idempotent)."""
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_when_due, daemon=True)
            self._flusher.name = "metrics-flush"
            self._flusher.start()

    def _flush_when_due(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(FLUSH_INTERVAL_S)
            self.flush()


_tally = _Tally()
_tally.start_flusher()
atexit.register(_tally.flush)


def flush() -> None:
    """Write this process's tallied counts to the metric values now (tests, shutdown)."""
    _tally.flush()


def observe_request(handler: str, method: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its duration; ``handler`` is the route template."""
    key = (handler, method if method in _METHODS else "OTHER", status)
    child = _requests.get(key)
    if child is None:
        child = _requests[key] = HTTP_DURATION.labels(key[0], key[1], str(status))
    _tally.observe(child, seconds)


def _child(metric: Counter, detector: str) -> Counter:
    child = _by_detector.get((metric, detector))
    if child is None:
        child = _by_detector[(metric, detector)] = metric.labels(detector)
    return child


def record_fit(detector: str) -> None:
    """Count one stored fit."""
    _tally.add(_child(FITS, detector), 1)


def record_scores(detector: str, points: int, anomalies: int) -> None:
    """Count ``points`` scored by ``detector``, of which ``anomalies`` were flagged."""
    _tally.add(_child(POINTS_SCORED, detector), points)
    if anomalies:
        _tally.add(_child(ANOMALIES_FLAGGED, detector), anomalies)


def record_predict(detector: str, anomaly: bool, cache_hit: bool) -> None:
    """Count one scored point of a single predict (and the cache hit that served it)."""
    counters = _predict_counters.get((detector, anomaly, cache_hit))
    if counters is None:
        counters = [_child(POINTS_SCORED, detector)]
        if anomaly:
            counters.append(_child(ANOMALIES_FLAGGED, detector))
        if cache_hit:
            counters.append(CACHE_HITS)
        _predict_counters[(detector, anomaly, cache_hit)] = counters
    _tally.add_many(counters)


_predict_counters: dict[tuple[str, bool, bool], list[Counter]] = {}


def record_cached_predict(handler: str, detector: str, anomaly: bool, seconds: float) -> None:
    """What :func:`record_predict` (a cache hit) and :func:`observe_request` (POST,
    200) count for one single predict, in one call: the path every cached predict
    takes, where each call's cost shows in the rate (measured: each of the two cost
    ~5 µs of a ~50 µs request under wrk, several times what it costs in a loop)."""
    found = _cached_predicts.get((handler, detector, anomaly))
    if found is None:
        record_predict(detector, anomaly, True)
        observe_request(handler, "POST", 200, seconds)
        found = _cached_predicts[(handler, detector, anomaly)] = (
            _predict_counters[(detector, anomaly, True)],
            _requests[(handler, "POST", 200)],
        )
        return
    _tally.add_many_and_observe(found[0], found[1], seconds)


_cached_predicts: dict[tuple[str, str, bool], tuple[list[Counter], Histogram]] = {}


def record_cache_hit() -> None:
    """Count a model found in the cache."""
    _tally.add(CACHE_HITS, 1)


def record_cache_hits(count: int) -> None:
    """Count ``count`` models found in the cache."""
    if count:
        _tally.add(CACHE_HITS, count)


def record_cache_miss() -> None:
    """Count a model that had to be loaded from the store."""
    _tally.add(CACHE_MISSES, 1)


def set_cache_size(size: int) -> None:
    """Report how many fitted models this process holds in memory."""
    CACHE_SIZE.set(size)


def render() -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``: every worker's metrics, summed."""
    _tally.flush()
    if _RUN_DIR is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _forget_dead_workers(_RUN_DIR)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_RUN_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_dead_workers(path: str) -> None:
    """Drop the live-gauge files of dead workers (uvicorn does not tell us who died)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    dead = {
        int(match[1])
        for name in names
        if (match := _LIVE_GAUGE_FILE.fullmatch(name)) and not process_alive(int(match[1]))
    }
    for pid in dead:
        try:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except FileNotFoundError:  # another worker removed it first
            continue
