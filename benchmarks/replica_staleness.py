"""How long after replica A acknowledges a fit does replica B answer "latest" with it?

Usage: ``python benchmarks/replica_staleness.py [--fits 300] [--postgresql-url URL]``
(``make bench-postgres`` runs it).

Two ``anomaly-api serve`` processes share a throwaway PostgreSQL database. Each round
fits a series on A and, the moment A's 200 arrives, asks B to predict that series'
latest version, again and again until B names the new version. Reported: the share of
rounds in which B's *first* predict already had it, and the median, p99 and maximum
delay from A's acknowledgement to B's first fresh answer. (B learns of the fit from
PostgreSQL's NOTIFY; the delay is that notification's delivery.) Both replicas cache the
series' models throughout, so B's stale answers come from its cache, as in production.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg

from anomaly_api.bench_server import free_port

FIT_BODY = json.dumps(
    {"timestamps": list(range(1_691_000_000, 1_691_006_000, 60)), "values": [10.0] * 100}
).encode()
PREDICT_BODY = b'{"timestamp": 1691006000, "value": 10.5}'


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def start_server(url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    script = Path(sys.executable).parent / "anomaly-api"
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port)],
        env={**os.environ, "ANOMALY_DATABASE_URL": url, "ANOMALY_LOG_LEVEL": "warning"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthcheck")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start; see {log}")


def post(connection: http.client.HTTPConnection, path: str, body: bytes) -> dict[str, Any]:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer: dict[str, Any] = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {answer}")
    return answer


def measure(fits: int, a_port: int, b_port: int) -> dict[str, Any]:
    a = http.client.HTTPConnection("127.0.0.1", a_port, timeout=10)
    b = http.client.HTTPConnection("127.0.0.1", b_port, timeout=10)
    post(a, "/fit/sensor", FIT_BODY)
    post(b, "/predict/sensor", PREDICT_BODY)  # B caches version 1 as latest
    delays_ms: list[float] = []
    stale_predicts = 0
    first_fresh = 0
    for _ in range(fits):
        version = post(a, "/fit/sensor", FIT_BODY)["version"]
        acknowledged = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            if post(b, "/predict/sensor", PREDICT_BODY)["model_version"] == version:
                break
            stale_predicts += 1
        delays_ms.append((time.perf_counter() - acknowledged) * 1000)
        first_fresh += attempts == 1
    delays = np.array(delays_ms)
    return {
        "fits": fits,
        "first_predict_fresh_share": first_fresh / fits,
        "stale_predicts": stale_predicts,
        "delay_ms_median": float(np.median(delays)),
        "delay_ms_p99": float(np.percentile(delays, 99)),
        "delay_ms_max": float(delays.max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgresql-url",
        default=os.environ.get(
            "ANOMALY_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    name = f"anomaly_staleness_{secrets.token_hex(4)}"
    with psycopg.connect(args.postgresql_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(args.postgresql_url, name)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            (a, a_port), (b, b_port) = (
                start_server(url, Path(scratch) / f"{label}.log") for label in "ab"
            )
            processes += [a, b]
            rounds = []
            for index in range(args.rounds):
                result = measure(args.fits, a_port, b_port)
                print(f"round {index + 1}: {result}", flush=True)
                rounds.append(result)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        with psycopg.connect(args.postgresql_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    summary = {
        key: statistics.median(result[key] for result in rounds)
        for key in ("first_predict_fresh_share", "delay_ms_median", "delay_ms_p99")
    }
    summary["delay_ms_max"] = max(result["delay_ms_max"] for result in rounds)
    summary["stale_predicts"] = sum(result["stale_predicts"] for result in rounds)
    summary["fits"] = sum(result["fits"] for result in rounds)
    table = (
        f"Command: `python benchmarks/replica_staleness.py --fits {args.fits} --rounds "
        f"{args.rounds}` ({time.strftime('%Y-%m-%d')}; medians over rounds, max over all)\n\n"
        "| fits | B's first predict already fresh | delay median ms | p99 ms | max ms |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| {summary['fits']} | {summary['first_predict_fresh_share']:.1%} "
        f"| {summary['delay_ms_median']:.2f} | {summary['delay_ms_p99']:.2f} "
        f"| {summary['delay_ms_max']:.2f} |\n"
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replica_staleness.json").write_text(
        json.dumps({"rounds": rounds, "summary": summary}, indent=2)
    )
    (args.out / "replica_staleness.md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
