"""The load client behind ``anomaly-api bench``.

It repeats the original service's benchmark: fit the sample series (1,000 points one
second apart, uniform in [0, 200]), send 5,000 predict requests 100 at a time, then
print the rate and the service's healthcheck. What it changes is the client, so that
the number measures the server and not the benchmark:

* A fixed pool of ``concurrency`` worker coroutines pulls request indices from one
  shared iterator, instead of one task per request throttled by a semaphore, whose
  thousands of waiting tasks cost the client about as much as the requests do.
* One ``aiohttp`` session with a keep-alive connection pool of exactly
  ``concurrency`` connections, so each worker reuses its own TCP connection rather
  than opening one per request. The client-side keep-alive timeout is kept below
  uvicorn's (5 s) so the client never reuses a connection the server is closing.
* Every request body is serialized to bytes before the clock starts; per request the
  client only sends bytes, reads bytes, and parses the answer with ``orjson``.
* The progress bar is updated in batches, not per request, and the event loop is
  uvloop's when it is installed (the server uses it too).

Errors (non-200 answers, connection failures, timeouts) are counted, with a few
samples kept, and never abort the run; the fit that has to come first, however, must
succeed, and :class:`BenchError` says why it did not.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import numpy as np
import orjson
from tqdm import tqdm

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
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60.0, connect=10.0)
#: Completions between two progress-bar updates.
PROGRESS_BATCH = 50
#: Distinct error strings kept in the report.
MAX_ERROR_SAMPLES = 5
#: How much of an error body an error string quotes.
MAX_BODY_CHARS = 300

_JSON_HEADERS = {"Content-Type": "application/json"}


class BenchError(RuntimeError):
    """The benchmark could not run: the server did not answer, or the fit failed."""


@dataclass(frozen=True)
class BenchReport:
    """What one benchmark run measured.

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


class _Run:
    """The mutable state the workers of one run share (one event loop, no locks)."""

    def __init__(self, requests: int, progress: _Progress) -> None:
        self.latencies_ms = np.empty(requests, dtype=np.float64)
        self.ok = np.zeros(requests, dtype=bool)
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
        self.unreported += 1
        if self.unreported >= PROGRESS_BATCH:
            self.progress.update(self.unreported)
            self.unreported = 0

    def flush(self) -> None:
        if self.unreported:
            self.progress.update(self.unreported)
            self.unreported = 0


async def _worker(
    session: aiohttp.ClientSession,
    predict_url: str,
    jobs: Iterator[tuple[int, bytes]],
    run: _Run,
) -> None:
    """Send requests until the shared iterator is exhausted.

    All workers draw from the same iterator; ``next`` never awaits, so no two workers
    can take the same request.
    """
    clock = time.perf_counter
    for index, body in jobs:
        started = clock()
        try:
            async with session.post(predict_url, data=body, headers=_JSON_HEADERS) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            run.error(_exception_text(exc))
        else:
            run.latencies_ms[index] = (clock() - started) * 1000.0
            if status != 200:
                run.error(_error_text(status, raw))
            else:
                try:
                    anomaly = orjson.loads(raw)["anomaly"]
                except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    run.error(f"bad predict answer ({_exception_text(exc)}): {raw[:100]!r}")
                else:
                    run.ok[index] = True
                    run.anomalies += anomaly is True
        run.done()


async def _fit(
    session: aiohttp.ClientSession, url: str, series_id: str, points: int
) -> tuple[str, float, int]:
    """Fit the sample; the new version, the fit's latency in ms, and the last timestamp."""
    timestamps, values = sample_points(points)
    body = orjson.dumps({"timestamps": timestamps, "values": values})
    fit_url = f"{url}/fit/{quote(series_id, safe='')}"
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


async def _bench(
    url: str, *, requests: int, concurrency: int, series_id: str, progress: bool, points: int
) -> BenchReport:
    connector = aiohttp.TCPConnector(
        limit=concurrency, keepalive_timeout=KEEPALIVE_S, force_close=False
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=REQUEST_TIMEOUT,
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        model_version, fit_ms, last_timestamp = await _fit(session, url, series_id, points)
        bodies = predict_bodies(requests, start=last_timestamp + 1)
        jobs = iter(enumerate(bodies))
        predict_url = f"{url}/predict/{quote(series_id, safe='')}"
        with tqdm(
            total=requests,
            desc="predict",
            unit="req",
            file=sys.stderr,
            disable=not progress,
            mininterval=0.2,
        ) as bar:
            run = _Run(requests, bar)
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    _worker(session, predict_url, jobs, run)
                    for _ in range(min(concurrency, requests))
                )
            )
            elapsed_s = time.perf_counter() - started
            run.flush()
        healthcheck = await _healthcheck(session, url)

    latency = summarize_latencies(run.latencies_ms[run.ok])
    return BenchReport(
        url=url,
        series_id=series_id,
        requests=requests,
        concurrency=concurrency,
        points=points,
        fit_ms=fit_ms,
        model_version=model_version,
        elapsed_s=elapsed_s,
        requests_per_s=requests / elapsed_s if elapsed_s > 0 else float("inf"),
        p50_ms=latency.p50,
        p95_ms=latency.p95,
        p99_ms=latency.p99,
        mean_ms=latency.mean,
        max_ms=latency.max,
        errors=run.errors,
        anomalies=run.anomalies,
        error_samples=tuple(run.error_samples),
        healthcheck=healthcheck,
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (it is, except on Windows); asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def run_bench(
    url: str,
    *,
    requests: int = 5000,
    concurrency: int = 100,
    series_id: str = "bench_sample",
    progress: bool = True,
    points: int = 1000,
) -> BenchReport:
    """Fit ``points`` sample points as ``series_id`` on the service at ``url``, then send
    ``requests`` predicts from ``concurrency`` workers and read the healthcheck.

    Each call fits a new version, so repeated runs against one series report versions
    1, 2, 3 ... Raises :class:`BenchError` when the fit fails or nothing answers at
    ``url``; failed predicts are counted in the report instead.
    """
    if requests < 1:
        raise ValueError(f"requests must be at least 1, got {requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    url = url.rstrip("/")
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(
            _bench(
                url,
                requests=requests,
                concurrency=concurrency,
                series_id=series_id,
                progress=progress,
                points=points,
            )
        )


def _ms(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.2f}"


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
