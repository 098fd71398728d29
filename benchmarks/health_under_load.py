"""How fast ``/healthcheck`` answers while every heavy slot is busy, against a real
``anomaly-api serve`` (one worker), and the server's peak memory.

Usage: ``python benchmarks/health_under_load.py [--detects 48] [--points 100000]
[--rounds 3]``. Each round sends ``--detects`` concurrent ``POST /detect`` of
``--points`` points (``hampel``, ``window: 1000``: the security issue's heavy request)
while ``/healthcheck`` is asked every 50 ms over a kept-alive connection; it reports
each healthcheck's time from the client (median, p99, max) and the statuses of the
detects. Extra ``ANOMALY_*`` settings: ``--env NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from anomaly_api.bench_server import ServerProcess


def detect_body(points: int) -> bytes:
    rng = np.random.default_rng(1)
    return json.dumps(
        {
            "timestamps": list(range(0, points * 60, 60)),
            "values": rng.normal(0, 1, points).round(4).tolist(),
            "detector": "hampel",
            "params": {"window": 1000},
        }
    ).encode()


def post(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/detect", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def one_round(server: ServerProcess, body: bytes, detects: int) -> dict[str, object]:
    times: list[float] = []
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while not done.is_set():
            started = time.perf_counter()
            connection.request("GET", "/healthcheck")
            answer = connection.getresponse()
            answer.read()
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status == 200, answer.status
            peak = max(peak, server.rss_bytes() or 0)
            done.wait(0.05)
        connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(detects) as pool:
            statuses = Counter(pool.map(lambda _: post(server.port, body), range(detects)))
    finally:
        done.set()
        watcher.join()
    ordered = sorted(times)
    return {
        "healthchecks": len(times),
        "median_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
        "over_100_ms": sum(1 for value in ordered if value > 100),
        "detect_statuses": dict(statuses),
        "peak_rss_mb": round(peak / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detects", type=int, default=48)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    body = detect_body(args.points)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with ServerProcess(folder / "m.db", log=folder / "server.log", env=env) as server:
            for index in range(args.rounds):
                print(f"round {index + 1}: {one_round(server, body, args.detects)}", flush=True)


if __name__ == "__main__":
    main()
