"""How many acknowledged observations a ``kill -9`` loses, and that SIGTERM loses none.

Usage: ``python benchmarks/stream_durability.py [--rounds 5] [--seconds 3] [--out DIR]``

Each round starts ``anomaly-api serve`` (one worker, SQLite, the default
``ANOMALY_STREAM_FLUSH_S``), fits a series and streams points to it one predict at a time
(each a new, later point that the series observes) for ``--seconds`` plus a random part
of two seconds, then kills the server with SIGKILL at that moment, restarts it on the
same port and reads, through ``GET /series/{id}``, the last timestamp the store kept.
The acknowledged points after it are the loss; the **window** is the time from the first
lost point's acknowledgement to the kill: at most the flush interval plus one save's
duration, by design. One more round stops the server with SIGTERM instead: nothing may
be lost.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from anomaly_api.bench_server import cli_command, free_port


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, None if body is None else orjson.dumps(body))
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, orjson.loads(data) if data else None


def start(database: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ANOMALY_DATABASE_URL": f"sqlite:///{database}",
        "ANOMALY_LOG_LEVEL": "warning",
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*cli_command(), "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(300):
        try:
            if request(port, "GET", "/healthcheck")[0] == 200:
                return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start; see {log}")


def one_round(scratch: Path, seconds: float, stop: signal.Signals) -> dict[str, Any]:
    database, port = scratch / f"round-{time.time_ns()}.db", free_port()
    log = scratch / "server.log"
    server = start(database, port, log)
    timestamps = list(range(1_700_000_000, 1_700_000_100))
    status, _ = request(
        port, "POST", "/fit/s", {"timestamps": timestamps, "values": [1.0, 2.0] * 50}
    )
    assert status == 200
    acknowledged: list[tuple[int, float]] = []
    timestamp = timestamps[-1]
    # A random moment within a flush interval or two, so that kills land anywhere
    # between two saves.
    deadline = time.monotonic() + seconds + random.uniform(0.0, 2.0)
    while time.monotonic() < deadline:
        timestamp += 1
        status, body = request(port, "POST", "/predict/s", {"timestamp": timestamp, "value": 1.5})
        assert status == 200, body
        assert body["observed"], body
        acknowledged.append((timestamp, time.monotonic()))
    stopped_at = time.monotonic()
    os.killpg(server.pid, stop)
    server.wait(timeout=30)
    successor = start(database, port, log)
    try:
        kept = request(port, "GET", "/series/s")[1]["stream"]["last_timestamp"]
    finally:
        os.killpg(successor.pid, signal.SIGTERM)
        successor.wait(timeout=30)
    lost = [(t, when) for t, when in acknowledged if t > kept]
    return {
        "signal": stop.name,
        "acknowledged": len(acknowledged),
        "lost": len(lost),
        "window_s": round(stopped_at - lost[0][1], 3) if lost else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="anomaly-durability-"))
    try:
        kills = [one_round(scratch, args.seconds, signal.SIGKILL) for _ in range(args.rounds)]
        term = one_round(scratch, args.seconds, signal.SIGTERM)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "kill_9": kills,
        "kill_9_window_s": {
            "median": statistics.median(r["window_s"] for r in kills),
            "max": max(r["window_s"] for r in kills),
        },
        "kill_9_lost_points": {
            "median": statistics.median(r["lost"] for r in kills),
            "max": max(r["lost"] for r in kills),
        },
        "sigterm": term,
    }
    print(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "stream_durability.json").write_text(json.dumps(report, indent=2))
    return 1 if term["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
