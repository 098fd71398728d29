"""The load client behind ``anomaly-api bench``.

Its default scenario, ``predict``, repeats the original service's benchmark: fit the
sample series (1,000 points one second apart, uniform in [0, 200]), send 5,000
predict requests 100 at a time, then print the rate and the service's healthcheck.
More scenarios measure the rest of the API the same way:

=========  ==================================================================
predict    5,000 single-point predicts of the sample's latest version, 100 concurrent
batch      200 batches of 10,000 points (``POST /predict/{id}/batch``), 8 concurrent
fit        200 fits of 1,000 points spread over 10 series, 8 concurrent
mixed      the predict scenario while 2 clients keep re-fitting the predicted series
           and others, so "latest" keeps moving under the predicts; both reported
=========  ==================================================================

What the client changes, compared with the original's, is that the number measures
the server and not the benchmark:

* A fixed pool of ``concurrency`` worker coroutines pulls requests from one shared
  iterator, instead of one task per request throttled by a semaphore, whose
  thousands of waiting tasks cost the client about as much as the requests do.
* One ``aiohttp`` session with a keep-alive connection pool of exactly as many
  connections as workers, so each worker reuses its own TCP connection rather than
  opening one per request. The client-side keep-alive timeout is kept below
  uvicorn's (5 s) so the client never reuses a connection the server is closing.
* Every request body is serialized to bytes before the clock starts; per request the
  client only sends bytes, reads bytes, and parses the answer with ``orjson``.
* The progress bar is updated in batches, not per request, and the event loop is
  uvloop's when it is installed (the server uses it too).

Errors (non-200 answers, connection failures, timeouts, answers without the expected
fields) are counted, with a few samples kept, and never abort the run; the fit that
has to come first, however, must succeed, and :class:`BenchError` says why it did not.
With ``runs > 1`` each scenario is repeated and its figures are the medians of the
runs (errors are summed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import aiohttp
import numpy as np
import orjson
from tqdm import tqdm

from anomaly_api.auth import client_headers
from anomaly_api.sample import sample_points

#: Predicted values are uniform in this range, wider than the sample's [0, 200] so that
#: some answer ``anomaly: true``. The default zscore band of the sample is 100 +- 3 std
#: (std of uniform [0, 200] is about 57.7), i.e. about [-73, 273]: [-50, 250] would never
#: leave it, while [-100, 300] puts about 13% of the values outside.
VALUE_RANGE = (-100.0, 300.0)
#: Seed of the predicted values, so two runs send the same requests.
VALUE_SEED = 7
#: Client keep-alive, below uvicorn's default ``timeout_keep_alive`` of 5 s.
KEEPALIVE_S = 4.0
#: How long one request may take before it counts as an error.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=120.0, connect=10.0)
#: Completions between two progress-bar updates.
PROGRESS_BATCH = 50
#: Distinct error strings kept in the report.
MAX_ERROR_SAMPLES = 5
#: How much of an error body an error string quotes.
MAX_BODY_CHARS = 300
#: Points of the sample every scenario fits first (the original's sample.csv).
SAMPLE_POINTS = 1000
#: Distinct pre-serialized bodies the batch and fit scenarios cycle through.
BODY_POOL = 8
#: Series the fit scenario spreads its fits over.
FIT_SERIES = 10
#: Clients re-fitting while the mixed scenario predicts.
MIXED_FIT_WORKERS = 2
#: The original service, measured with wrk -c100 against one worker (README).
ORIGINAL_PREDICTS_PER_S = 593

_JSON_HEADERS = {"Content-Type": "application/json"}

T = TypeVar("T")


@dataclass(frozen=True)
class Scenario:
    """A scenario's name, what it does, and its defaults."""

    name: str
    description: str
    requests: int
    concurrency: int
    points: int
    """Points per request: the batch size, the fit size; 1 for predicts."""


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("predict", "fit the sample, then single-point predicts", 5000, 100, 1),
        Scenario("batch", "fit the sample, then batch predicts", 200, 8, 10_000),
        Scenario("fit", f"fits spread over {FIT_SERIES} series", 200, 8, 1000),
        Scenario(
            "mixed",
            f"predicts while {MIXED_FIT_WORKERS} clients re-fit that series and others",
            5000,
            100,
            1000,
        ),
    )
}


class BenchError(RuntimeError):
    """The benchmark could not run: the server did not answer, or the fit failed."""


@dataclass(frozen=True)
class BenchReport:
    """What one run of the predict scenario measured (``run_bench``).

    Latency figures (milliseconds) cover the predicts answered 200 and are NaN when
    none was; ``requests_per_s`` counts every predict sent, answered or not, over the
    wall-clock time of the predict phase (the fit is timed separately in ``fit_ms``).
    """

    url: str
    series_id: str
    requests: int
    concurrency: int
    points: int
    fit_ms: float
    model_version: str
    elapsed_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    anomalies: int
    error_samples: tuple[str, ...] = ()
    healthcheck: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles, mean and maximum of a set of latencies, in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    max: float


def summarize_latencies(latencies_ms: np.ndarray[Any, np.dtype[np.float64]]) -> LatencySummary:
    """p50/p95/p99 (``numpy.percentile``, linear interpolation), mean and max.

    An empty array (no request succeeded) gives NaN everywhere rather than raising,
    so a run where everything failed still produces a report.

    >>> s = summarize_latencies(np.arange(1.0, 101.0))
    >>> (round(s.p50, 2), round(s.p95, 2), round(s.p99, 2), s.mean, s.max)
    (50.5, 95.05, 99.01, 50.5, 100.0)
    >>> summarize_latencies(np.array([])).p99
    nan
    """
    if latencies_ms.size == 0:
        nan = float("nan")
        return LatencySummary(nan, nan, nan, nan, nan)
    p50, p95, p99 = (float(p) for p in np.percentile(latencies_ms, [50, 95, 99]))
    return LatencySummary(
        p50=p50,
        p95=p95,
        p99=p99,
        mean=float(latencies_ms.mean()),
        max=float(latencies_ms.max()),
    )


@dataclass(frozen=True)
class PhaseStats:
    """One stream of requests of one scenario run (or the medians of several runs).

    ``requests_per_s`` counts every request sent over the phase's wall-clock time;
    ``points_per_s`` is that rate times the points per request (None for predicts);
    latencies cover the requests answered correctly.
    """

    name: str
    requests: int
    concurrency: int
    points_per_request: int
    seconds: float
    requests_per_s: float
    points_per_s: float | None
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int
    error_samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScenarioResult:
    """Every run of one scenario, their medians, and the healthcheck read after them."""

    scenario: str
    runs: tuple[tuple[PhaseStats, ...], ...]
    healthcheck: dict[str, Any]

    @property
    def median(self) -> tuple[PhaseStats, ...]:
        """Per phase, the median of each figure over the runs; errors summed."""
        return tuple(median_phase(phases) for phases in zip(*self.runs, strict=True))

    @property
    def errors(self) -> int:
        return sum(phase.errors for phases in self.runs for phase in phases)


@dataclass(frozen=True)
class BenchSuite:
    """A ``bench`` invocation: where, when, on what, and each scenario's result."""

    url: str
    command: str
    date: str
    machine: dict[str, Any]
    results: tuple[ScenarioResult, ...]

    @property
    def errors(self) -> int:
        return sum(result.errors for result in self.results)


def _median(values: Iterable[float]) -> float:
    finite = [value for value in values if not np.isnan(value)]
    return statistics.median(finite) if finite else float("nan")


def median_phase(phases: Sequence[PhaseStats]) -> PhaseStats:
    """The median of each figure of several runs of one phase; errors summed.

    >>> a = PhaseStats("p", 10, 2, 1, 1.0, 10.0, None, 1, 2, 3, 1, 4, 0)
    >>> b = PhaseStats("p", 10, 2, 1, 2.0, 5.0, None, 3, 4, 5, 3, 6, 1, ("HTTP 500",))
    >>> c = PhaseStats("p", 10, 2, 1, 0.5, 20.0, None, 2, 3, 4, 2, 5, 0)
    >>> m = median_phase([a, b, c])
    >>> (m.requests_per_s, m.p50_ms, m.errors, m.error_samples)
    (10.0, 2, 1, ('HTTP 500',))
    """
    first = phases[0]
    points = [phase.points_per_s for phase in phases if phase.points_per_s is not None]
    samples: dict[str, None] = {}
    for phase in phases:
        samples.update(dict.fromkeys(phase.error_samples))
    return PhaseStats(
        name=first.name,
        requests=int(statistics.median(phase.requests for phase in phases)),
        concurrency=first.concurrency,
        points_per_request=first.points_per_request,
        seconds=_median(phase.seconds for phase in phases),
        requests_per_s=_median(phase.requests_per_s for phase in phases),
        points_per_s=_median(points) if points else None,
        p50_ms=_median(phase.p50_ms for phase in phases),
        p95_ms=_median(phase.p95_ms for phase in phases),
        p99_ms=_median(phase.p99_ms for phase in phases),
        mean_ms=_median(phase.mean_ms for phase in phases),
        max_ms=_median(phase.max_ms for phase in phases),
        errors=sum(phase.errors for phase in phases),
        error_samples=tuple(samples)[:MAX_ERROR_SAMPLES],
    )


# -- request bodies ---------------------------------------------------------------------


def predict_bodies(requests: int, start: int, seed: int = VALUE_SEED) -> list[bytes]:
    """The ``requests`` predict bodies, serialized up front.

    Timestamps continue one second apart after the training data and are sent as
    strings, as the wire contract has them; values are uniform in :data:`VALUE_RANGE`.

    >>> predict_bodies(2, 1691001000)[0][:27]
    b'{"timestamp":"1691001000","'
    """
    low, high = VALUE_RANGE
    values = np.random.default_rng(seed).uniform(low, high, requests)
    return [
        orjson.dumps({"timestamp": str(start + i), "value": round(float(value), 4)})
        for i, value in enumerate(values)
    ]


def batch_bodies(count: int, points: int, start: int, seed: int = VALUE_SEED) -> list[bytes]:
    """``count`` batch-predict bodies of ``points`` points each, continuing one second
    apart after ``start``, values uniform in :data:`VALUE_RANGE`.

    >>> body = orjson.loads(batch_bodies(2, 3, 100)[1])
    >>> body["timestamps"]
    [103, 104, 105]
    """
    low, high = VALUE_RANGE
    rng = np.random.default_rng(seed)
    bodies = []
    for index in range(count):
        first = start + index * points
        bodies.append(
            orjson.dumps(
                {
                    "timestamps": np.arange(first, first + points, dtype=np.int64),
                    "values": np.round(rng.uniform(low, high, points), 4),
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        )
    return bodies


def fit_body(points: int, seed: int) -> bytes:
    """A fit body of ``points`` sample points (uniform in [0, 200], one second apart)."""
    timestamps, values = sample_points(points, seed)
    return orjson.dumps({"timestamps": timestamps, "values": values})


# -- the load engine ----------------------------------------------------------------


def _error_text(status: int, body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + "..."
    return f"HTTP {status}: {text}"


def _exception_text(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _Progress(Protocol):
    """The part of a tqdm bar the workers use."""

    def update(self, n: int) -> object: ...


class Load:
    """The mutable state the workers of one request stream share (one event loop, no
    locks): latencies of the correct answers, counts, error samples, progress."""

    def __init__(self, progress: _Progress | None = None) -> None:
        self.latencies_ms: list[float] = []
        self.sent = 0
        self.errors = 0
        self.anomalies = 0
        self.error_samples: dict[str, None] = {}  # an insertion-ordered set
        self.progress = progress
        self.unreported = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples[text] = None

    def done(self) -> None:
        self.sent += 1
        self.unreported += 1
        if self.unreported >= PROGRESS_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.unreported and self.progress is not None:
            self.progress.update(self.unreported)
        self.unreported = 0

    def stats(
        self, name: str, concurrency: int, points_per_request: int, seconds: float
    ) -> PhaseStats:
        latency = summarize_latencies(np.asarray(self.latencies_ms, dtype=np.float64))
        rate = self.sent / seconds if seconds > 0 else float("inf")
        return PhaseStats(
            name=name,
            requests=self.sent,
            concurrency=concurrency,
            points_per_request=points_per_request,
            seconds=seconds,
            requests_per_s=rate,
            points_per_s=rate * points_per_request if points_per_request > 1 else None,
            p50_ms=latency.p50,
            p95_ms=latency.p95,
            p99_ms=latency.p99,
            mean_ms=latency.mean,
            max_ms=latency.max,
            errors=self.errors,
            error_samples=tuple(self.error_samples),
        )


#: Reads a 200 answer; returns what is wrong with it, or None when it is right.
Check = Callable[[bytes, Load], str | None]


def check_predict(raw: bytes, load: Load) -> str | None:
    """A predict answer must carry a boolean ``anomaly``."""
    try:
        anomaly = orjson.loads(raw)["anomaly"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return f"bad predict answer ({_exception_text(exc)}): {raw[:100]!r}"
    load.anomalies += anomaly is True
    return None


def check_batch(points: int) -> Check:
    """A batch answer must score all ``points`` points, in columns."""

    def check(raw: bytes, load: Load) -> str | None:
        try:
            answer = orjson.loads(raw)
            flags = answer["anomaly"]
            complete = answer["count"] == points and all(
                len(answer[column]) == points for column in ("anomaly", "score", "expected")
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            return f"bad batch answer ({_exception_text(exc)}): {raw[:100]!r}"
        if not complete:
            return f"batch answer without {points} points: {raw[:100]!r}"
        load.anomalies += sum(flag is True for flag in flags)
        return None

    return check


def check_fit(raw: bytes, load: Load) -> str | None:
    """A fit answer must name the new version."""
    try:
        orjson.loads(raw)["version"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return f"bad fit answer ({_exception_text(exc)}): {raw[:100]!r}"
    return None


async def _worker(
    session: aiohttp.ClientSession,
    jobs: Iterator[tuple[str, bytes]],
    load: Load,
    check: Check,
) -> None:
    """Send requests until the shared iterator is exhausted.

    All workers draw from the same iterator; ``next`` never awaits, so no two workers
    can take the same request.
    """
    clock = time.perf_counter
    for url, body in jobs:
        started = clock()
        try:
            async with session.post(url, data=body, headers=_JSON_HEADERS) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            load.error(_exception_text(exc))
        else:
            elapsed_ms = (clock() - started) * 1000.0
            if status != 200:
                load.error(_error_text(status, raw))
            elif (problem := check(raw, load)) is not None:
                load.error(problem)
            else:
                load.latencies_ms.append(elapsed_ms)
        load.done()


async def drive(
    session: aiohttp.ClientSession,
    jobs: Iterable[tuple[str, bytes]],
    workers: int,
    load: Load,
    check: Check,
) -> float:
    """POST every ``(url, body)`` of ``jobs`` from ``workers`` coroutines; the seconds
    it took."""
    shared = iter(jobs)
    started = time.perf_counter()
    await asyncio.gather(*(_worker(session, shared, load, check) for _ in range(workers)))
    elapsed = time.perf_counter() - started
    load.flush()
    return elapsed


@asynccontextmanager
async def client_session(connections: int) -> AsyncIterator[aiohttp.ClientSession]:
    """One session whose keep-alive pool holds exactly ``connections`` connections."""
    connector = aiohttp.TCPConnector(
        limit=connections, keepalive_timeout=KEEPALIVE_S, force_close=False
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=REQUEST_TIMEOUT,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers=client_headers(),  # ANOMALY_API_KEY, for a server that requires keys
    ) as session:
        yield session


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool) -> tqdm[Any]:
    """A tqdm bar on stderr, redrawn at most five times a second."""
    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, mininterval=0.2
    )


def _series_url(url: str, route: str, series_id: str, suffix: str = "") -> str:
    return f"{url}/{route}/{quote(series_id, safe='')}{suffix}"


async def _fit(
    session: aiohttp.ClientSession, url: str, series_id: str, points: int
) -> tuple[str, float, int]:
    """Fit the sample; the new version, the fit's latency in ms, and the last timestamp."""
    timestamps, values = sample_points(points)
    body = orjson.dumps({"timestamps": timestamps, "values": values})
    fit_url = _series_url(url, "fit", series_id)
    started = time.perf_counter()
    try:
        async with session.post(fit_url, data=body, headers=_JSON_HEADERS) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise BenchError(
            f"the server at {url} did not answer POST /fit/{series_id} ({_exception_text(exc)}); "
            f"is `anomaly-api serve` running there?"
        ) from exc
    fit_ms = (time.perf_counter() - started) * 1000.0
    if status != 200:
        raise BenchError(
            f"the server at {url} answered POST /fit/{series_id} with {_error_text(status, raw)}"
        )
    try:
        version = orjson.loads(raw)["version"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchError(
            f"the server at {url} answered POST /fit/{series_id} with 200 but no version: "
            f"{raw[:MAX_BODY_CHARS]!r}"
        ) from exc
    return str(version), fit_ms, timestamps[-1]


async def _healthcheck(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """``GET /healthcheck``'s JSON (a 503 still carries it); ``{"error": ...}`` otherwise.

    The run is over by now, so a failing healthcheck is reported rather than raised.
    """
    try:
        async with session.get(f"{url}/healthcheck") as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"error": _exception_text(exc)}
    try:
        health = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"error": _error_text(status, raw)}
    return health if isinstance(health, dict) else {"error": _error_text(status, raw)}


# -- scenarios --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    session: aiohttp.ClientSession
    url: str
    series_id: str
    requests: int
    concurrency: int
    points: int
    progress: bool


async def _predict_scenario(ctx: _Context) -> tuple[PhaseStats, ...]:
    _, _, last = await _fit(ctx.session, ctx.url, ctx.series_id, SAMPLE_POINTS)
    predict_url = _series_url(ctx.url, "predict", ctx.series_id)
    jobs = ((predict_url, body) for body in predict_bodies(ctx.requests, start=last + 1))
    workers = min(ctx.concurrency, ctx.requests)
    with progress_bar(ctx.requests, "predict", "req", ctx.progress) as bar:
        load = Load(bar)
        seconds = await drive(ctx.session, jobs, workers, load, check_predict)
    return (load.stats("predict", workers, 1, seconds),)


async def _batch_scenario(ctx: _Context) -> tuple[PhaseStats, ...]:
    _, _, last = await _fit(ctx.session, ctx.url, ctx.series_id, SAMPLE_POINTS)
    batch_url = _series_url(ctx.url, "predict", ctx.series_id, "/batch")
    pool = batch_bodies(min(ctx.requests, BODY_POOL), ctx.points, start=last + 1)
    jobs = ((batch_url, pool[i % len(pool)]) for i in range(ctx.requests))
    workers = min(ctx.concurrency, ctx.requests)
    with progress_bar(ctx.requests, "batch", "req", ctx.progress) as bar:
        load = Load(bar)
        seconds = await drive(ctx.session, jobs, workers, load, check_batch(ctx.points))
    return (load.stats("batch", workers, ctx.points, seconds),)


async def _fit_scenario(ctx: _Context) -> tuple[PhaseStats, ...]:
    # The first fit checks that the server answers, and says why when it does not.
    await _fit(ctx.session, ctx.url, ctx.series_id, SAMPLE_POINTS)
    pool = [fit_body(ctx.points, seed) for seed in range(min(ctx.requests, BODY_POOL))]
    urls = [
        _series_url(ctx.url, "fit", f"{ctx.series_id}_fit_{k}")
        for k in range(min(ctx.requests, FIT_SERIES))
    ]
    jobs = ((urls[i % len(urls)], pool[i % len(pool)]) for i in range(ctx.requests))
    workers = min(ctx.concurrency, ctx.requests)
    with progress_bar(ctx.requests, "fit", "fit", ctx.progress) as bar:
        load = Load(bar)
        seconds = await drive(ctx.session, jobs, workers, load, check_fit)
    return (load.stats("fit", workers, ctx.points, seconds),)


async def _mixed_scenario(ctx: _Context) -> tuple[PhaseStats, ...]:
    _, _, last = await _fit(ctx.session, ctx.url, ctx.series_id, SAMPLE_POINTS)
    predict_url = _series_url(ctx.url, "predict", ctx.series_id)
    predicts = ((predict_url, body) for body in predict_bodies(ctx.requests, start=last + 1))
    # Every other fit re-fits the series being predicted, moving its latest version
    # under the predicts; the others fit series of their own.
    fit_urls = [
        _series_url(ctx.url, "fit", ctx.series_id if k % 2 == 0 else f"{ctx.series_id}_mixed_{k}")
        for k in range(BODY_POOL)
    ]
    fit_pool = [(fit_urls[k], fit_body(ctx.points, seed=k)) for k in range(BODY_POOL)]
    predicting = True

    def fits() -> Iterator[tuple[str, bytes]]:
        for job in itertools.cycle(fit_pool):
            if not predicting:
                return
            yield job

    async def predict_phase() -> float:
        nonlocal predicting
        try:
            return await drive(ctx.session, predicts, predict_workers, predict_load, check_predict)
        finally:
            predicting = False

    predict_workers = min(ctx.concurrency, ctx.requests)
    with progress_bar(ctx.requests, "mixed", "req", ctx.progress) as bar:
        predict_load = Load(bar)
        fit_load = Load()
        predict_seconds, fit_seconds = await asyncio.gather(
            predict_phase(),
            drive(ctx.session, fits(), MIXED_FIT_WORKERS, fit_load, check_fit),
        )
    return (
        predict_load.stats("mixed: predict", predict_workers, 1, predict_seconds),
        fit_load.stats("mixed: fit", MIXED_FIT_WORKERS, ctx.points, fit_seconds),
    )


_RUNNERS = {
    "predict": _predict_scenario,
    "batch": _batch_scenario,
    "fit": _fit_scenario,
    "mixed": _mixed_scenario,
}


def scenario_names(selection: str) -> list[str]:
    """``"all"``, one name, or a comma-separated list, checked against :data:`SCENARIOS`.

    >>> scenario_names("all")
    ['predict', 'batch', 'fit', 'mixed']
    >>> scenario_names("fit,predict")
    ['fit', 'predict']
    """
    if selection.strip() == "all":
        return list(SCENARIOS)
    names = [name.strip() for name in selection.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        valid = ", ".join([*SCENARIOS, "all"])
        raise ValueError(f"unknown scenario {', '.join(unknown) or selection!r}; valid: {valid}")
    return names


async def _suite(
    url: str,
    names: Sequence[str],
    *,
    runs: int,
    requests: int | None,
    concurrency: int | None,
    points: int | None,
    series_id: str,
    progress: bool,
) -> list[ScenarioResult]:
    results = []
    for name in names:
        scenario = SCENARIOS[name]
        workers = concurrency or scenario.concurrency
        # The mixed scenario's fit stream needs its own connections.
        extra = MIXED_FIT_WORKERS if name == "mixed" else 0
        async with client_session(workers + extra) as session:
            ctx = _Context(
                session=session,
                url=url,
                series_id=series_id,
                requests=requests or scenario.requests,
                concurrency=workers,
                points=points or scenario.points,
                progress=progress,
            )
            run_phases = []
            for _ in range(runs):
                run_phases.append(await _RUNNERS[name](ctx))
            healthcheck = await _healthcheck(session, url)
        results.append(ScenarioResult(name, tuple(run_phases), healthcheck))
    async with client_session(4) as session:
        await _delete_series(session, url, bench_series(series_id))
    return results


def bench_series(series_id: str) -> list[str]:
    """Every series the scenarios may fit (deleted after a run)."""
    return [
        series_id,
        *(f"{series_id}_fit_{k}" for k in range(FIT_SERIES)),
        *(f"{series_id}_mixed_{k}" for k in range(1, BODY_POOL, 2)),
    ]


async def _delete_series(
    session: aiohttp.ClientSession, url: str, series_ids: Sequence[str]
) -> None:
    """Delete what a run fitted, so that a bench leaves nothing behind in the user's
    store (a series it never fitted answers 404: fine). Failures are not the run's."""
    for series_id in series_ids:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.delete(_series_url(url, "series", series_id)) as answer:
                await answer.read()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (it is, except on Windows); asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on a fresh (uvloop) event loop."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coroutine)


def run_scenarios(
    url: str,
    names: Sequence[str],
    *,
    runs: int = 1,
    requests: int | None = None,
    concurrency: int | None = None,
    points: int | None = None,
    series_id: str = "bench_sample",
    progress: bool = True,
    command: str = "",
) -> BenchSuite:
    """Run each scenario ``runs`` times against ``url``; ``requests``, ``concurrency``
    and ``points`` override every scenario's defaults (see :data:`SCENARIOS`).

    Raises :class:`BenchError` when a scenario's first fit fails or nothing answers.
    """
    for label, number in (("runs", runs), ("requests", requests), ("concurrency", concurrency)):
        if number is not None and number < 1:
            raise ValueError(f"{label} must be at least 1, got {number}")
    if points is not None and points < 5:
        raise ValueError(f"points must be at least 5, got {points}")
    url = url.rstrip("/")
    started = datetime.now().astimezone()
    results = run_async(
        _suite(
            url,
            names,
            runs=runs,
            requests=requests,
            concurrency=concurrency,
            points=points,
            series_id=series_id,
            progress=progress,
        )
    )
    return BenchSuite(
        url=url,
        command=command,
        date=started.strftime("%Y-%m-%d %H:%M %Z"),
        machine=machine_info(),
        results=tuple(results),
    )


def run_bench(
    url: str,
    *,
    requests: int = 5000,
    concurrency: int = 100,
    series_id: str = "bench_sample",
    progress: bool = True,
    points: int = SAMPLE_POINTS,
) -> BenchReport:
    """The predict scenario, once, in detail: fit ``points`` sample points as
    ``series_id`` on the service at ``url``, send ``requests`` predicts from
    ``concurrency`` workers and read the healthcheck.

    Each call fits a new version, so repeated runs against one series report versions
    1, 2, 3 ... Raises :class:`BenchError` when the fit fails or nothing answers at
    ``url``; failed predicts are counted in the report instead.
    """
    if requests < 1:
        raise ValueError(f"requests must be at least 1, got {requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    url = url.rstrip("/")

    async def bench() -> BenchReport:
        workers = min(concurrency, requests)
        async with client_session(workers) as session:
            model_version, fit_ms, last = await _fit(session, url, series_id, points)
            predict_url = _series_url(url, "predict", series_id)
            jobs = ((predict_url, body) for body in predict_bodies(requests, start=last + 1))
            with progress_bar(requests, "predict", "req", progress) as bar:
                load = Load(bar)
                seconds = await drive(session, jobs, workers, load, check_predict)
            healthcheck = await _healthcheck(session, url)
            await _delete_series(session, url, [series_id])
        stats = load.stats("predict", concurrency, 1, seconds)
        return BenchReport(
            url=url,
            series_id=series_id,
            requests=requests,
            concurrency=concurrency,
            points=points,
            fit_ms=fit_ms,
            model_version=model_version,
            elapsed_s=seconds,
            requests_per_s=stats.requests_per_s,
            p50_ms=stats.p50_ms,
            p95_ms=stats.p95_ms,
            p99_ms=stats.p99_ms,
            mean_ms=stats.mean_ms,
            max_ms=stats.max_ms,
            errors=load.errors,
            anomalies=load.anomalies,
            error_samples=stats.error_samples,
            healthcheck=healthcheck,
        )

    return run_async(bench())


# -- reports ----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Cores, CPU model (``/proc/cpuinfo``), Python and OS: what a figure was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def describe_machine(machine: dict[str, Any]) -> str:
    """``2 cores, AMD EPYC, Python 3.11.9, Linux 6.1``."""
    return (
        f"{machine.get('cores')} cores, {machine.get('cpu')}, "
        f"Python {machine.get('python')}, {machine.get('os')}"
    )


def _ms(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.2f}"


def _rate(value: float | None) -> str:
    if value is None or np.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def format_report(report: BenchReport) -> str:
    """The report as the CLI prints it: the scenario, the rate, latencies, errors, and
    the healthcheck pretty-printed, as the original benchmark ended with it."""
    lines = [
        f"{report.requests} predict requests, {report.concurrency} concurrent, against "
        f"{report.url} (series {report.series_id}, model version {report.model_version})",
        f"fit:        {report.points} points in {report.fit_ms:.1f} ms",
        f"rate:       {report.requests_per_s:.1f} requests/s "
        f"({report.requests} in {report.elapsed_s:.3f} s)",
        f"latency ms: p50 {_ms(report.p50_ms)}  p95 {_ms(report.p95_ms)}  "
        f"p99 {_ms(report.p99_ms)}  mean {_ms(report.mean_ms)}  max {_ms(report.max_ms)}",
        f"anomalies:  {report.anomalies} of {report.requests - report.errors} answered",
        f"errors:     {report.errors}",
    ]
    lines.extend(f"  {sample}" for sample in report.error_samples)
    lines.append("healthcheck:")
    lines.append(orjson.dumps(report.healthcheck, option=orjson.OPT_INDENT_2).decode())
    return "\n".join(lines)


def _phase_label(phase: PhaseStats) -> str:
    if phase.points_per_request > 1:
        return f"{phase.name} ({phase.points_per_request:,} points)"
    return phase.name


def _rows(suite: BenchSuite) -> list[list[str]]:
    rows = []
    for result in suite.results:
        for phase in result.median:
            original = f"~{ORIGINAL_PREDICTS_PER_S} req/s" if phase.name == "predict" else "-"
            rows.append(
                [
                    _phase_label(phase),
                    f"{phase.requests:,}",
                    str(phase.concurrency),
                    _rate(phase.requests_per_s),
                    _rate(phase.points_per_s),
                    _ms(phase.p50_ms),
                    _ms(phase.p95_ms),
                    _ms(phase.p99_ms),
                    str(phase.errors),
                    original,
                ]
            )
    return rows


_HEADER = [
    "scenario",
    "requests",
    "concurrency",
    "req/s",
    "points/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "original",
]


def format_table(suite: BenchSuite) -> str:
    """A plain-text table, one row per request stream (medians over the runs), then
    the error samples and the last healthcheck."""
    rows = [_HEADER, *_rows(suite)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    runs = len(suite.results[0].runs) if suite.results else 0
    lines.insert(0, f"against {suite.url}; medians of {runs} run(s) per scenario")
    for result in suite.results:
        for phase in result.median:
            lines.extend(f"  {phase.name}: {sample}" for sample in phase.error_samples)
    if suite.results:
        lines.append("healthcheck:")
        lines.append(
            orjson.dumps(suite.results[-1].healthcheck, option=orjson.OPT_INDENT_2).decode()
        )
    return "\n".join(lines)


def format_markdown(suite: BenchSuite) -> str:
    """The README's table: machine, command and date, then one row per request stream
    with the original service's figure beside ours where the scenario is the same."""
    runs = len(suite.results[0].runs) if suite.results else 0
    lines = [
        f"Machine: {describe_machine(suite.machine)}; server (one worker) and client on "
        f"the same machine.  ",
        f"Command: `{suite.command}`  ",
        f"Date: {suite.date}; figures are medians of {runs} run(s).",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|---|" + "---:|" * (len(_HEADER) - 2) + "---|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in _rows(suite))
    lines.append("")
    lines.append(
        f"original: the service this one replaces, about {ORIGINAL_PREDICTS_PER_S} predicts/s "
        "on this machine measured with `wrk -c100` against one worker (its own client "
        "topped out below that); it had no batch endpoint and no figure for fits."
    )
    return "\n".join(lines)


def write_suite(suite: BenchSuite, out: Path) -> list[Path]:
    """``bench.json`` (:func:`suite_json`) and ``bench.md`` (:func:`format_markdown`)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.md"]
    paths[0].write_bytes(orjson.dumps(suite_json(suite), option=orjson.OPT_INDENT_2) + b"\n")
    paths[1].write_text(format_markdown(suite) + "\n")
    return paths


def _json_number(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else round(value, 3)


def _phase_json(phase: PhaseStats) -> dict[str, Any]:
    document = asdict(phase)
    for key, value in document.items():
        if isinstance(value, float):
            document[key] = _json_number(value)
    document["error_samples"] = list(phase.error_samples)
    return document


def suite_json(suite: BenchSuite) -> dict[str, Any]:
    """The suite as one JSON-able document: per scenario, the medians, every run, and
    the healthcheck read after the last run. NaN (nothing answered) becomes null."""
    return {
        "url": suite.url,
        "command": suite.command,
        "date": suite.date,
        "machine": suite.machine,
        "errors": suite.errors,
        "scenarios": {
            result.scenario: {
                "runs": len(result.runs),
                "median": [_phase_json(phase) for phase in result.median],
                "per_run": [[_phase_json(phase) for phase in run] for run in result.runs],
                "healthcheck": result.healthcheck,
            }
            for result in suite.results
        },
    }
