"""An Azure entire-series detection of 8,640 points against the bare ASGI app accepting
the same body, on this machine, in one run.

Usage: ``python benchmarks/azure_speed.py [--repeats 30] [--rounds 3]``

Both servers run as ``uvicorn`` processes on the server core (``taskset``); the body is
what the 3.0.0b6 SDK sends for a month of 5-minute points (ISO-8601 timestamps with
``Z``, ``granularity: minutely``, ``customInterval: 5``). Each request is timed by the
client from the first byte sent to the last byte read over a kept-alive connection; the
figures are medians over ``--repeats`` requests, and the rounds alternate the servers.
Also timed: last-point and change-point detection of the same body.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "wrk"))

from compare import start, stop  # noqa: E402

from anomaly_api.bench_server import free_port  # noqa: E402

POINTS = 8640


def azure_body() -> bytes:
    start_at = datetime(2024, 1, 1, tzinfo=UTC)
    series = [
        {
            "timestamp": (start_at + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": round(100 + 10 * math.sin(2 * math.pi * i / 288) + (i * 7919 % 13) / 5, 4),
        }
        for i in range(POINTS)
    ]
    return json.dumps(
        {"series": series, "granularity": "minutely", "customInterval": 5, "sensitivity": 95}
    ).encode()


def timed(port: int, path: str, body: bytes, repeats: int) -> float:
    """Median seconds per request over ``repeats`` on one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    seconds = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        data = answer.read()
        seconds.append(time.perf_counter() - started)
        assert answer.status == 200, data[:300]
    connection.close()
    return statistics.median(seconds[2:])  # the first two warm up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = azure_body()
    bin_dir = Path(sys.executable).parent
    bare_port, service_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "PYTHONPATH": str(HERE / "wrk")}
        bare = start(
            [str(bin_dir / "uvicorn"), "bare_asgi:app", "--port", str(bare_port), "--log-level",
             "warning", "--no-access-log", "--http", "httptools", "--loop", "uvloop"],
            env, bare_port, "/",
        )  # fmt: skip
        service = start(
            [str(bin_dir / "anomaly-api"), "serve", "--port", str(service_port)],
            {**os.environ, "ANOMALY_DATABASE_URL": f"sqlite:///{scratch}/m.db"},
            service_port,
            "/healthcheck",
        )
        try:
            rows: dict[str, list[float]] = {}
            prefix = "/anomalydetector/v1.1/timeseries"
            for _ in range(args.rounds):
                for name, port, path in (
                    ("bare app accepts the body", bare_port, "/"),
                    ("entire detect", service_port, f"{prefix}/entire/detect"),
                    ("last-point detect", service_port, f"{prefix}/last/detect"),
                    ("change-point detect", service_port, f"{prefix}/changepoint/detect"),
                ):
                    rows.setdefault(name, []).append(timed(port, path, body, args.repeats))
        finally:
            stop(bare)
            stop(service)
    bare_s = statistics.median(rows["bare app accepts the body"])
    print(
        f"{POINTS:,} points ({len(body) / 1e6:.2f} MB body), medians of {args.repeats} "
        f"requests x {args.rounds} rounds, client to last byte:\n"
    )
    print("| request | median ms | times bare |\n|---|---:|---:|")
    for name, values in rows.items():
        value = statistics.median(values)
        print(f"| {name} | {value * 1000:.1f} | {value / bare_s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
