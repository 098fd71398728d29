"""``POST /predict`` (bulk) at scale: one request with a point of each of many series.

Usage: ``python benchmarks/bulk.py [--series 10000] [--requests 20] [--out DIR]``

1. A store with ``--series`` zscore series (100 training points each) is filled
   in-process (fits are not what is measured), then a server (one worker) is started on
   it, pinned to one core when ``taskset`` exists, the client on the other.
2. One warm-up request with a point of every series makes every model and stream live
   in the server (each series' first predict loads it from the store: reported too).
3. ``--requests`` timed requests, each a point of every series (one second after its
   previous point, so every point is news the series learns), one after another on a
   keep-alive connection, timed from the first byte sent to the last byte received.

Reported: the median points/s over the timed requests, the p50/p95 request time, the
server's CPU time per point over them (user + system, all its threads, from ``/proc``:
steadier than points/s on a shared machine, whose other tenants slow the wall clock but
are not counted in it), the body sizes and the errors (points answered with an error;
must be 0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomaly_api.bench_server import cli_command, free_port
from anomaly_api.bench_wrk import cpu_seconds
from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import open_store

START = 1_800_000_000


def fill(database: Path, series: int) -> None:
    registry = ModelRegistry(open_store(f"sqlite:///{database}", durable=False), stream_flush_s=0)
    rng = np.random.default_rng(1)
    timestamps = list(range(START - 100, START))
    try:
        for index in range(series):
            registry.fit(f"metric-{index}", timestamps, rng.normal(100, 10, 100).tolist())
    finally:
        registry.close()


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[float, dict[str, Any], int]:
    started = time.perf_counter()
    connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {data[:300]!r}")
    return seconds, orjson.loads(data), len(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="py-spy record the server into this file")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="anomaly-bulk-"))
    pinned = shutil.which("taskset") is not None
    server: subprocess.Popen[bytes] | None = None
    try:
        database = scratch / "bulk.db"
        started = time.perf_counter()
        fill(database, args.series)
        print(
            f"filled {args.series} series in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        port = free_port()
        env = {
            **os.environ,
            "ANOMALY_DATABASE_URL": f"sqlite:///{database}",
            "ANOMALY_LOG_LEVEL": "warning",
        }
        command = [*cli_command(), "serve", "--port", str(port)]
        server = subprocess.Popen(
            (["taskset", "-c", "1"] if pinned else []) + command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if pinned:
            os.sched_setaffinity(0, {0})
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for _ in range(300):
            try:
                connection.request("GET", "/healthcheck")
                connection.getresponse().read()
                break
            except OSError:
                connection.close()
                time.sleep(0.1)
        ids = [f"metric-{index}" for index in range(args.series)]

        def body(step: int) -> bytes:
            return orjson.dumps(
                [
                    {"series_id": series_id, "timestamp": START + step, "value": 100.5}
                    for series_id in ids
                ]
            )

        cold_seconds, answer, _ = post(connection, body(0))
        assert answer["errors"] == 0, answer["results"][:3]
        spy = None
        if args.profile is not None:
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(server.pid), "-f", "raw", "-o", str(args.profile)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        timings: list[float] = []
        errors = 0
        cpu_before = cpu_seconds(server.pid)
        request_bytes = response_bytes = 0
        for step in range(1, args.requests + 1):
            payload = body(step)
            seconds, answer, size = post(connection, payload)
            timings.append(seconds)
            errors += answer["errors"]
            request_bytes, response_bytes = len(payload), size
        cpu = cpu_seconds(server.pid) - cpu_before
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=30)
        rates = [args.series / seconds for seconds in timings]
        report = {
            "series": args.series,
            "requests": args.requests,
            "points_per_request": args.series,
            "median_points_per_s": statistics.median(rates),
            "p50_ms": 1000 * statistics.median(timings),
            "p95_ms": 1000 * sorted(timings)[int(0.95 * (len(timings) - 1))],
            "errors": errors,
            "server_cpu_us_per_point": 1e6 * cpu / (args.series * args.requests),
            "points_per_server_cpu_s": args.series * args.requests / cpu if cpu else None,
            "request_mb": request_bytes / 1e6,
            "response_mb": response_bytes / 1e6,
            "first_request_s": cold_seconds,
            "first_predict_ms_per_cold_series": 1000 * cold_seconds / args.series,
            "pinned": pinned,
        }
        print(json.dumps(report, indent=2))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "bulk.json").write_text(json.dumps(report, indent=2))
        return 1 if errors else 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
