"""How cost grows: ``anomaly-api bench --scenario scaling``.

A benchmark, not a test: it measures and draws, and asserts nothing. Three questions:

1. **Does a predict cost the same with 1 or 100,000 stored series?** A SQLite store is
   filled in-process (through :class:`~anomaly_api.registry.ModelRegistry`, with
   fsync off) with ``max_series`` small series, every tenth with three versions. Then
   real ``anomaly-api serve`` processes answer predicts on a *random series per
   request* drawn from working sets of 1, 100, 1k, 10k and 100k series: once with a
   model cache larger than every working set (each working set is first warmed by one
   predict per series, so what is measured is the steady state), once with a cache of
   ``small_cache`` models, smaller than the large working sets, so most predicts miss
   and read their model from the store.
2. **Is fit time linear in the points?** Fits of 1k … 1M points through HTTP, each
   size the median of a few, body parsing and the durable commit included.
3. **What does a cached model cost in memory?** ``tracemalloc`` around loading
   ``memory_models`` models into a fresh registry's cache, in this process, for the
   default detector and for ``adaptive`` (whose state is the largest), trained on 1,000
   points each; and the server's RSS growth per model while its cache filled during (1)
   (everything included: allocator slack, the cache's own entries).

The results go to ``scaling.json``, ``scaling.md`` and ``scaling.png`` (matplotlib's
object API on the Agg canvas, as :mod:`anomaly_api.plotting` draws).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
import tracemalloc
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from matplotlib.figure import Figure

from anomaly_api.bench import (
    Load,
    PhaseStats,
    check_predict,
    client_session,
    describe_machine,
    drive,
    machine_info,
    median_phase,
    progress_bar,
    run_async,
)
from anomaly_api.bench_server import ServerProcess
from anomaly_api.registry import ModelRegistry
from anomaly_api.sample import SAMPLE_START
from anomaly_api.storage import open_store

#: Working sets measured (those up to ``max_series``, and ``max_series`` itself).
WORKING_SETS = (1, 100, 1_000, 10_000, 100_000)
#: Fit sizes measured (those up to ``max_fit_points``).
FIT_POINTS = (1_000, 10_000, 100_000, 1_000_000)
#: Every this many series gets ``EXTRA_VERSIONS`` more versions.
VERSIONED_EVERY = 10
EXTRA_VERSIONS = 2
#: Values predicted in the scaling runs: around the stored series' level.
PREDICT_VALUES = 64
#: Predicts on one series each new server answers before anything is measured.
SERVER_WARM_UP = 500
#: Seconds a single scaling fit may take.
FIT_TIMEOUT_S = 300.0


def series_name(index: int) -> str:
    """The id of the ``index``-th stored series: ``s000042``."""
    return f"s{index:06d}"


@dataclass(frozen=True)
class ScalingConfig:
    """What the scaling benchmark measures; the defaults are ``make bench``'s."""

    max_series: int = 100_000
    working_sets: tuple[int, ...] = WORKING_SETS
    small_cache: int = 1_000
    requests: int = 2_000
    """Predicts per run, on random series of the working set."""
    repeats: int = 3
    """Runs per working set and cache (in rounds over the working sets); the median is
    reported."""
    concurrency: int = 10
    training_points: int = 30
    """Points per stored series (small, so 100k series fill in well under a minute)."""
    fit_points: tuple[int, ...] = FIT_POINTS
    fit_repeats: int = 3
    memory_models: int = 2_000
    memory_training_points: int = 1_000
    memory_detectors: tuple[str, ...] = ("zscore", "adaptive")
    seed: int = 11

    @classmethod
    def sized(
        cls,
        *,
        max_series: int = 100_000,
        max_fit_points: int = 1_000_000,
        requests: int | None = None,
        concurrency: int | None = None,
    ) -> ScalingConfig:
        """The defaults, cut to ``max_series`` series and ``max_fit_points`` points.

        >>> ScalingConfig.sized(max_series=5000, max_fit_points=20_000).working_sets
        (1, 100, 1000, 5000)
        >>> ScalingConfig.sized(max_series=5000, max_fit_points=20_000).fit_points
        (1000, 10000, 20000)
        """
        working_sets = tuple(sorted({n for n in WORKING_SETS if n < max_series} | {max_series}))
        fit_points = tuple(sorted({n for n in FIT_POINTS if n < max_fit_points} | {max_fit_points}))
        config = cls(max_series=max_series, working_sets=working_sets, fit_points=fit_points)
        return replace(
            config,
            requests=requests or config.requests,
            concurrency=concurrency or config.concurrency,
        )


@dataclass(frozen=True)
class PredictPoint:
    """Predicts on random series of one working set, with one cache size."""

    cache_size: int
    working_set: int
    stats: PhaseStats
    models_cached: int | None
    server_rss_bytes: int | None


@dataclass(frozen=True)
class FitPoint:
    """Fits of one size: the median and every repeat, in milliseconds."""

    points: int
    median_ms: float
    runs_ms: tuple[float, ...]

    @property
    def points_per_s(self) -> float:
        return self.points / (self.median_ms / 1000.0)


@dataclass(frozen=True)
class MemoryPoint:
    """Bytes per cached model of one detector."""

    detector: str
    models: int
    training_points: int
    traced_bytes_per_model: float


@dataclass(frozen=True)
class ScalingResult:
    """Everything the scaling benchmark measured, and on what."""

    config: ScalingConfig
    command: str
    date: str
    machine: dict[str, Any]
    populate_s: float
    versions_stored: int
    predicts: tuple[PredictPoint, ...]
    fits: tuple[FitPoint, ...]
    memory: tuple[MemoryPoint, ...]
    server_rss_per_model: float | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


# -- 1. the store and predicts on random series ----------------------------------------


def populate_store(path: Path, config: ScalingConfig, progress: bool) -> tuple[float, int]:
    """Fill a fresh SQLite store with ``config.max_series`` series; the seconds it took
    and the versions stored."""
    store = open_store(f"sqlite:///{path}", durable=False)
    registry = ModelRegistry(store, model_cache_size=1)
    rng = np.random.default_rng(config.seed)
    timestamps = np.arange(SAMPLE_START, SAMPLE_START + config.training_points, dtype=np.int64)
    versions = 0
    started = time.perf_counter()
    try:
        with progress_bar(config.max_series, "store", "series", progress) as bar:
            for index in range(config.max_series):
                fits = 1 + (EXTRA_VERSIONS if index % VERSIONED_EVERY == 0 else 0)
                for _ in range(fits):
                    values = rng.normal(100.0, 10.0, config.training_points)
                    registry.fit(series_name(index), timestamps, values)
                versions += fits
                if index % 500 == 499:
                    bar.update(500)
            bar.update(config.max_series - bar.n)
    finally:
        registry.close()
    return time.perf_counter() - started, versions


def _predict_jobs(url: str, series: np.ndarray[Any, Any], start: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(int(series.size))
    values = np.round(rng.normal(100.0, 15.0, PREDICT_VALUES), 3)
    bodies = [
        orjson.dumps({"timestamp": str(start + i), "value": float(value)})
        for i, value in enumerate(values)
    ]
    return [
        (f"{url}/predict/{series_name(int(index))}", bodies[i % PREDICT_VALUES])
        for i, index in enumerate(series)
    ]


def _healthcheck(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/healthcheck", timeout=30) as response:
        health: dict[str, Any] = orjson.loads(response.read())
    return health


async def _measure_predicts(
    server: ServerProcess, cache_size: int, config: ScalingConfig, progress: bool
) -> tuple[list[PredictPoint], float | None]:
    """Time ``config.requests`` predicts on uniformly random series of each working set.

    The working sets take turns, ``config.repeats`` rounds of them, and each figure is
    the median of its rounds: a burst of noise on a shared machine then moves one run of
    every working set rather than all runs of one. A cache that holds every series is
    warmed once, by one predict per series; a smaller one is re-warmed before each run
    (one predict per series of the working set, at most ``cache_size`` of them), so
    every run starts from the steady state of its own working set.
    """
    start = SAMPLE_START + config.training_points
    rng = np.random.default_rng(config.seed)
    largest = max(config.working_sets)
    holds_all = cache_size >= largest
    runs: dict[int, list[PhaseStats]] = {size: [] for size in config.working_sets}
    cached: dict[int, int | None] = {}
    rss: dict[int, int | None] = {}
    per_model = None

    async def send(series: np.ndarray[Any, Any], bar: Any) -> PhaseStats:
        load = Load(bar)
        jobs = _predict_jobs(server.url, series, start)
        seconds = await drive(session, jobs, config.concurrency, load, check_predict)
        return load.stats("predict", config.concurrency, 1, seconds)

    async with client_session(config.concurrency) as session:
        # A fresh server's first requests pay for imports and connections: not measured.
        await send(np.zeros(SERVER_WARM_UP, dtype=np.int64), None)
        if holds_all:
            rss_before = server.rss_bytes()
            cached_before = int(_healthcheck(server.url).get("models_cached") or 0)
            with progress_bar(largest, f"warm cache {cache_size:,}", "req", progress) as bar:
                await send(np.arange(largest), bar)
            rss_after = server.rss_bytes()
            grown = int(_healthcheck(server.url).get("models_cached") or 0) - cached_before
            if rss_before is not None and rss_after is not None and grown > 0:
                per_model = (rss_after - rss_before) / grown
        total = config.repeats * len(config.working_sets) * config.requests
        with progress_bar(total, f"predict, cache {cache_size:,}", "req", progress) as bar:
            for _ in range(config.repeats):
                for size in config.working_sets:
                    if not holds_all:
                        warm = (
                            np.arange(size)
                            if size <= cache_size
                            else rng.integers(0, size, cache_size)
                        )
                        await send(warm, None)
                    runs[size].append(await send(rng.integers(0, size, config.requests), bar))
                    cached[size] = _healthcheck(server.url).get("models_cached")
                    rss[size] = server.rss_bytes()
    points = [
        PredictPoint(
            cache_size=cache_size,
            working_set=size,
            stats=median_phase(runs[size]),
            models_cached=cached[size],
            server_rss_bytes=rss[size],
        )
        for size in config.working_sets
    ]
    return points, per_model


# -- 2. fit time against points ---------------------------------------------------------


def measure_fits(url: str, config: ScalingConfig, progress: bool) -> list[FitPoint]:
    """Fit each size ``config.fit_repeats`` times through HTTP, sequentially; the body is
    serialized before the clock starts."""
    results = []
    rng = np.random.default_rng(config.seed)
    total = len(config.fit_points) * config.fit_repeats
    with progress_bar(total, "fit sizes", "fit", progress) as bar:
        for points in config.fit_points:
            body = orjson.dumps(
                {
                    "timestamps": np.arange(SAMPLE_START, SAMPLE_START + points, dtype=np.int64),
                    "values": np.round(rng.uniform(0.0, 200.0, points), 4),
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            runs = []
            for _ in range(config.fit_repeats):
                request = urllib.request.Request(
                    f"{url}/fit/fit_{points}",
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                started = time.perf_counter()
                with urllib.request.urlopen(request, timeout=FIT_TIMEOUT_S) as response:
                    response.read()
                runs.append((time.perf_counter() - started) * 1000.0)
                bar.update(1)
            results.append(FitPoint(points, statistics.median(runs), tuple(runs)))
    return results


# -- 3. memory per cached model ---------------------------------------------------------


def measure_model_memory(
    workdir: Path, detector: str, config: ScalingConfig, progress: bool
) -> MemoryPoint:
    """Bytes per model a registry's cache holds, loading ``config.memory_models`` models
    of ``detector``, measured by ``tracemalloc`` (numpy reports its arrays to it too)."""
    path = workdir / f"memory-{detector}.db"
    store = open_store(f"sqlite:///{path}", durable=False)
    rng = np.random.default_rng(config.seed)
    timestamps = np.arange(
        SAMPLE_START, SAMPLE_START + config.memory_training_points, dtype=np.int64
    )
    ids = [f"{detector}_{index}" for index in range(config.memory_models)]
    try:
        writer = ModelRegistry(store, model_cache_size=1, training_points_cap=0)
        with progress_bar(len(ids), f"memory {detector}", "model", progress) as bar:
            for series_id in ids:
                values = rng.uniform(0.0, 200.0, config.memory_training_points)
                writer.fit(series_id, timestamps, values, detector=detector)
                bar.update(1)

        def load(count: int) -> ModelRegistry:
            registry = ModelRegistry(store, model_cache_size=len(ids) + 1)
            for series_id in ids[:count]:
                registry.model(series_id)
            return registry

        load(min(10, len(ids)))  # first touch: code paths, connection pool
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = load(len(ids))
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        del kept
    finally:
        store.close()
    return MemoryPoint(
        detector=detector,
        models=len(ids),
        training_points=config.memory_training_points,
        traced_bytes_per_model=traced / len(ids),
    )


# -- the whole benchmark ---------------------------------------------------------------


def run_scaling(
    config: ScalingConfig, *, progress: bool = True, command: str = ""
) -> ScalingResult:
    """Fill a store, start servers on it, measure; see the module docstring."""
    started = datetime.now().astimezone()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="anomaly-scaling-") as tmp:
        workdir = Path(tmp)
        database = workdir / "scaling.db"
        clock = time.perf_counter()
        populate_s, versions = populate_store(database, config, progress)
        timings["populate"] = time.perf_counter() - clock

        predicts: list[PredictPoint] = []
        server_rss_per_model = None
        fits: list[FitPoint] = []
        large_cache = max(config.working_sets) + 1
        for cache_size in (large_cache, config.small_cache):
            clock = time.perf_counter()
            with ServerProcess(
                database,
                log=workdir / f"server-{cache_size}.log",
                env={
                    "ANOMALY_MODEL_CACHE_SIZE": str(cache_size),
                    # fits of up to max_fit_points are measured, not the request limits
                    "ANOMALY_MAX_POINTS_PER_REQUEST": str(max(800_000, *config.fit_points)),
                    "ANOMALY_MAX_REQUEST_WORK_S": "3600",
                },
            ) as server:
                points, per_model = run_async(
                    _measure_predicts(server, cache_size, config, progress)
                )
                timings[f"predicts, cache {cache_size}"] = time.perf_counter() - clock
                predicts.extend(points)
                if cache_size == large_cache:
                    server_rss_per_model = per_model
                else:  # the last server also answers the fits
                    clock = time.perf_counter()
                    fits = measure_fits(server.url, config, progress)
                    timings["fits"] = time.perf_counter() - clock

        clock = time.perf_counter()
        memory = [
            measure_model_memory(workdir, detector, config, progress)
            for detector in config.memory_detectors
        ]
        timings["memory"] = time.perf_counter() - clock
    return ScalingResult(
        config=config,
        command=command,
        date=started.strftime("%Y-%m-%d %H:%M %Z"),
        machine=machine_info(),
        populate_s=populate_s,
        versions_stored=versions,
        predicts=tuple(predicts),
        fits=tuple(fits),
        memory=tuple(memory),
        server_rss_per_model=server_rss_per_model,
        timings_s=timings,
    )


# -- output -----------------------------------------------------------------------------


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or np.isnan(value) else round(value, digits)


def scaling_json(result: ScalingResult) -> dict[str, Any]:
    """The result as one JSON-able document (NaN as null)."""
    return {
        "command": result.command,
        "date": result.date,
        "machine": result.machine,
        "config": asdict(result.config),
        "populate_s": _round(result.populate_s),
        "series_stored": result.config.max_series,
        "versions_stored": result.versions_stored,
        "predict": [
            {
                "cache_size": point.cache_size,
                "working_set": point.working_set,
                "requests": point.stats.requests,
                "concurrency": point.stats.concurrency,
                "requests_per_s": _round(point.stats.requests_per_s),
                "p50_ms": _round(point.stats.p50_ms),
                "p95_ms": _round(point.stats.p95_ms),
                "p99_ms": _round(point.stats.p99_ms),
                "errors": point.stats.errors,
                "error_samples": list(point.stats.error_samples),
                "models_cached": point.models_cached,
                "server_rss_bytes": point.server_rss_bytes,
            }
            for point in result.predicts
        ],
        "fit": [
            {
                "points": point.points,
                "median_ms": _round(point.median_ms),
                "runs_ms": [_round(run) for run in point.runs_ms],
                "points_per_s": _round(point.points_per_s, 0),
            }
            for point in result.fits
        ],
        "memory_per_cached_model": [
            {
                "detector": point.detector,
                "models": point.models,
                "training_points": point.training_points,
                "traced_bytes": _round(point.traced_bytes_per_model, 0),
            }
            for point in result.memory
        ],
        "server_rss_bytes_per_cached_model": _round(result.server_rss_per_model, 0),
        "timings_s": {key: _round(value, 1) for key, value in result.timings_s.items()},
    }


def _cache_label(cache_size: int, config: ScalingConfig) -> str:
    return (
        f"{cache_size:,} (small)"
        if cache_size == config.small_cache
        else f"{cache_size:,} (all fit)"
    )


def _kib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1024:.1f} KiB"


def format_scaling(result: ScalingResult) -> str:
    """The figures as markdown: machine, command, date, then three tables."""
    config = result.config
    lines = [
        f"Machine: {describe_machine(result.machine)}; server (one worker) and client on the "
        "same machine.  ",
        f"Command: `{result.command}`  ",
        f"Date: {result.date}.  ",
        f"Store: {config.max_series:,} series ({result.versions_stored:,} versions, "
        f"{config.training_points} training points each) written in {result.populate_s:.0f} s.",
        "",
        f"Predict on a random series per request: median of {config.repeats} runs of "
        f"{config.requests:,} requests, {config.concurrency} concurrent, taken in rounds over "
        "the working sets; the large cache was first filled with every series, the small "
        "one re-warmed with the working set before each run:",
        "",
        "| cache (ANOMALY_MODEL_CACHE_SIZE) | working set | req/s | p50 ms | p99 ms "
        "| models cached | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for point in result.predicts:
        stats = point.stats
        lines.append(
            f"| {_cache_label(point.cache_size, config)} | {point.working_set:,} "
            f"| {stats.requests_per_s:,.0f} | {stats.p50_ms:.2f} | {stats.p99_ms:.2f} "
            f"| {point.models_cached if point.models_cached is not None else 'n/a'} "
            f"| {stats.errors} |"
        )
    lines += [
        "",
        f"Fit through HTTP, median of {config.fit_repeats} (JSON parsing, validation, fit "
        "and the durable SQLite commit):",
        "",
        "| points | fit ms | points/s | ms per 1k points |",
        "|---:|---:|---:|---:|",
    ]
    for fit in result.fits:
        lines.append(
            f"| {fit.points:,} | {fit.median_ms:,.1f} | {fit.points_per_s:,.0f} "
            f"| {fit.median_ms / fit.points * 1000:.2f} |"
        )
    lines += [
        "",
        "Memory per cached model:",
        "",
        "| model | trained on | measured by | per cached model |",
        "|---|---:|---|---:|",
    ]
    for memory in result.memory:
        lines.append(
            f"| {memory.detector} | {memory.training_points:,} points "
            f"| tracemalloc, {memory.models:,} models loaded | "
            f"{_kib(memory.traced_bytes_per_model)} |"
        )
    if result.server_rss_per_model is not None:
        largest = max(config.working_sets)
        lines.append(
            f"| zscore, in the server | {config.training_points} points "
            f"| RSS growth while {largest:,} models were cached | "
            f"{_kib(result.server_rss_per_model)} |"
        )
    return "\n".join(lines)


def plot_scaling(result: ScalingResult) -> Figure:
    """Four panels: predict latency and throughput against the working set (both
    caches), fit time against points, and bytes per cached model."""
    figure = Figure(figsize=(12, 8.5), dpi=100, layout="constrained")
    (latency, throughput), (fit_axes, memory_axes) = figure.subplots(2, 2)
    config = result.config
    caches = sorted({point.cache_size for point in result.predicts}, reverse=True)
    for cache_size, color in zip(caches, ("tab:blue", "tab:orange"), strict=False):
        points = [point for point in result.predicts if point.cache_size == cache_size]
        sets = [point.working_set for point in points]
        label = f"cache {_cache_label(cache_size, config)}"
        latency.plot(
            sets, [p.stats.p50_ms for p in points], "o-", color=color, label=f"p50, {label}"
        )
        latency.plot(
            sets, [p.stats.p99_ms for p in points], "s--", color=color, label=f"p99, {label}"
        )
        throughput.plot(
            sets, [p.stats.requests_per_s for p in points], "o-", color=color, label=label
        )
    for axes in (latency, throughput):
        axes.set_xscale("log")
        axes.set_xlabel("working set (series, random one per request)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    latency.set_ylabel("predict latency, ms")
    latency.set_ylim(bottom=0)
    latency.set_title(
        f"Predict latency, {config.max_series:,} series stored, {config.concurrency} concurrent"
    )
    throughput.set_ylabel("predicts per second")
    throughput.set_ylim(bottom=0)
    throughput.set_title("Predict throughput")

    if result.fits:
        sizes = np.array([fit.points for fit in result.fits], dtype=np.float64)
        times = np.array([fit.median_ms for fit in result.fits])
        fit_axes.plot(sizes, times, "o-", label="measured (median)")
        # A line through the largest fit: what "linear in the points" would give.
        fit_axes.plot(sizes, times[-1] * sizes / sizes[-1], ":", color="grey", label="linear")
        fit_axes.set_xscale("log")
        fit_axes.set_yscale("log")
        fit_axes.legend(fontsize=8)
    fit_axes.set_xlabel("points per fit")
    fit_axes.set_ylabel("fit latency, ms (HTTP)")
    fit_axes.set_title("Fit time against points")
    fit_axes.grid(True, which="both", alpha=0.3)

    labels = [f"{m.detector}\n{m.training_points:,} pts\ntracemalloc" for m in result.memory]
    sizes_kib = [m.traced_bytes_per_model / 1024 for m in result.memory]
    colors = ["tab:blue"] * len(labels)
    if result.server_rss_per_model is not None:
        labels.append(f"zscore in server\n{config.training_points} pts\nRSS growth")
        sizes_kib.append(result.server_rss_per_model / 1024)
        colors.append("tab:orange")
    bars = memory_axes.bar(np.arange(len(labels)), sizes_kib, color=colors)
    memory_axes.bar_label(bars, fmt="%.1f KiB", fontsize=8)
    memory_axes.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    memory_axes.set_ylabel("KiB per cached model")
    memory_axes.set_title("Memory per cached model")
    memory_axes.grid(True, axis="y", alpha=0.3)
    figure.suptitle(f"How cost grows - {describe_machine(result.machine)}, {result.date}")
    return figure


def write_scaling(result: ScalingResult, out: Path) -> list[Path]:
    """``scaling.json``, ``scaling.md`` and ``scaling.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "scaling.json", out / "scaling.md", out / "scaling.png"]
    paths[0].write_bytes(orjson.dumps(scaling_json(result), option=orjson.OPT_INDENT_2) + b"\n")
    paths[1].write_text(format_scaling(result) + "\n")
    plot_scaling(result).savefig(paths[2], format="png")
    return paths
