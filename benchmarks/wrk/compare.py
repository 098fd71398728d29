"""The service against a bare ASGI app, on this machine, in one run.

Usage: ``python benchmarks/wrk/compare.py [--rounds 3] [--seconds 10] [--out DIR]``
(``make bench`` runs it when ``wrk`` is installed).

1. **Single predicts**, as the issue measures them: ``wrk -t1 -c100`` for ``--seconds``,
   wrk pinned to one core and the server (one uvicorn worker) to the other. The
   predicts are a live stream (``predict.lua``): every one a second after the one
   before, so each is news the series learns from and saves. In each round: the bare
   app (``bare_asgi.py``: parse with orjson, compare, answer), the service with
   ``?version=1`` and with latest, and a second service that requires API keys
   (``ANOMALY_AUTH=required``; every predict sends a key), each round starting with the
   next one.
   Reported: median requests/s over the rounds, the service's share of the bare app's,
   p50/p99 latency, errors, and the server's CPU time per request (read from
   ``/proc``; steadier than requests/s when the machine is shared).
2. **Large bodies**: a 1M-point body sent to the bare app (which parses it and answers
   with its length), to ``POST /predict/{id}/batch`` (1M points scored, columnar answer;
   all five columns, then only ``anomaly,score``), to ``POST /fit`` (1M points fitted and
   stored) and to ``POST /detect``, timed by the client from the
   first byte sent to the last byte received; median of ``--repeats``.

Prints a markdown table and writes ``compare.json`` (and ``compare.md``) to ``--out``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomaly_api.bench_server import free_port
from anomaly_api.bench_wrk import SERVER_CORE, run_wrk

HERE = Path(__file__).resolve().parent
PREDICT_LUA = HERE / "predict.lua"


def wait_ready(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def start(
    command: list[str], env: dict[str, str], port: int, ready: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_ready(port, ready)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def post(port: int, path: str, body: bytes, key: str | None = None) -> tuple[int, bytes, float]:
    """Status, body and seconds from sending the first byte to reading the last."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.connect()
    started = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    seconds = time.perf_counter() - started
    connection.close()
    return response.status, data, seconds


_next_start = [1_800_000_000]


def wrk(port: int, path: str, seconds: int, pid: int, key: str | None = None) -> dict[str, Any]:
    """One wrk run against ``path``: rate, latency percentiles, errors, CPU/request. Its
    stream starts after every earlier run's (no run can send 10^8 requests)."""
    _next_start[0] += 100_000_000
    script_args = (str(_next_start[0]),) if key is None else (str(_next_start[0]), key)
    return run_wrk(f"http://127.0.0.1:{port}{path}", PREDICT_LUA, seconds, pid, script_args)


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("compare: needs wrk and taskset (apt install wrk util-linux)", file=sys.stderr)
        return 2
    bin_dir = Path(sys.executable).parent
    scratch = Path(tempfile.mkdtemp(prefix="anomaly-compare-"))
    env = {
        **os.environ,
        "ANOMALY_DATABASE_URL": f"sqlite:///{scratch}/models.db",
        "ANOMALY_LOG_LEVEL": "warning",
        # What is measured is speed at --points, not the per-request limits.
        "ANOMALY_MAX_POINTS_PER_REQUEST": str(max(800_000, args.points)),
        "ANOMALY_MAX_REQUEST_WORK_S": "3600",
    }
    bare_port, service_port, keyed_port = free_port(), free_port(), free_port()
    from anomaly_api.auth import digest, new_key
    from anomaly_api.storage import open_store

    keyed_url = f"sqlite:///{scratch}/keyed.db"
    key = new_key()
    keyed_store = open_store(keyed_url)
    keyed_store.create_key("bench", digest(key), ("predict", "write"))
    keyed_store.close()
    bare = start(
        [
            str(bin_dir / "uvicorn"),
            "--app-dir",
            str(HERE),
            "bare_asgi:app",
            "--port",
            str(bare_port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env,
        bare_port,
        "/",
    )
    service = start(
        [str(bin_dir / "anomaly-api"), "serve", "--port", str(service_port)],
        env,
        service_port,
        "/healthcheck",
    )
    keyed = start(
        [str(bin_dir / "anomaly-api"), "serve", "--port", str(keyed_port)],
        {**env, "ANOMALY_DATABASE_URL": keyed_url, "ANOMALY_AUTH": "required"},
        keyed_port,
        "/healthcheck",
    )
    results: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    try:
        from anomaly_api.sample import sample_points

        timestamps, values = sample_points(1000, 42)
        # No retraining: at wrk's rates a stream of one point a second passes twelve
        # hours (zscore's retrain cadence) every ten seconds; what is measured is the
        # predict path with its state update, not a fit every few seconds.
        fit = orjson.dumps({"timestamps": timestamps, "values": values, "retrain": False})
        status, _, _ = post(service_port, "/fit/sample", fit)
        assert status == 200, status
        assert post(keyed_port, "/fit/sample", fit, key)[0] == 200
        assert post(keyed_port, "/fit/sample", fit)[0] == 401
        predict = b'{"timestamp": 1691001000, "value": 150.5}'
        for path in ("/predict/sample?version=1", "/predict/sample"):
            assert post(service_port, path, predict)[0] == 200
        assert post(keyed_port, "/predict/sample", predict, key)[0] == 200
        targets: dict[str, tuple[int, str, int, str | None]] = {
            "bare ASGI + orjson": (bare_port, "/predict/sample", bare.pid, None),
            "service, ?version=1": (service_port, "/predict/sample?version=1", service.pid, None),
            "service, latest": (service_port, "/predict/sample", service.pid, None),
            "service, latest, API key": (keyed_port, "/predict/sample", keyed.pid, key),
        }
        for port, path, pid, target_key in targets.values():
            wrk(port, path, 2, pid, target_key)  # warm-up, discarded
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        names = list(targets)
        for round_ in range(args.rounds):
            # Each round starts with a different target, so that a slow spell of the
            # machine does not always fall on the same one.
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                port, path, pid, target_key = targets[name]
                runs[name].append(wrk(port, path, args.seconds, pid, target_key))
                print(f"round {round_ + 1}: {name}: {runs[name][-1]}", file=sys.stderr)
        results["predict"] = runs
        results["large"] = large_bodies(args.points, args.repeats, bare_port, service_port)
    finally:
        stop(keyed)
        stop(service)
        stop(bare)
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(results, indent=2))
    table = markdown(results, args)
    (args.out / "compare.md").write_text(table + "\n")
    print(table)
    return 0


def large_bodies(points: int, repeats: int, bare_port: int, service_port: int) -> dict[str, Any]:
    """Each large body once per repeat. A batch goes to a series fitted just before (its
    points are news that the series then observes, as a backfill's are), so every repeat
    does the same work."""
    rng = np.random.default_rng(5)
    stamps = (1_700_000_000 + np.arange(points)).tolist()
    values = rng.normal(100, 10, points).tolist()
    body = orjson.dumps({"timestamps": stamps, "values": values})
    history = orjson.dumps(
        {
            "timestamps": list(range(1_699_990_000, 1_699_991_000)),
            "values": rng.normal(100, 10, 1000).tolist(),
            "retrain": False,  # what is measured is scoring, not a dozen fits on the way
        }
    )
    targets = {
        "bare app accepts the body": (bare_port, "/fit/big"),
        "POST /predict/{id}/batch": (service_port, "/predict/batch-{n}/batch"),
        "POST /predict/{id}/batch?columns=anomaly,score": (
            service_port,
            "/predict/lean-{n}/batch?columns=anomaly,score",
        ),
        "POST /fit (stored)": (service_port, "/fit/big"),
        "POST /detect": (service_port, "/detect"),
    }
    timings: dict[str, list[float]] = {name: [] for name in targets}
    for repeat in range(repeats):
        for name, (port, path) in targets.items():
            path = path.replace("{n}", str(repeat))
            if "/batch" in path:
                series = path.split("/")[2]
                assert post(service_port, f"/fit/{series}", history)[0] == 200
            status, answer, seconds = post(port, path, body)
            if status != 200:
                raise RuntimeError(f"{name}: {status} {answer[:200]!r}")
            timings[name].append(seconds)
    return {"points": points, "body_mb": len(body) / 1e6, "seconds": timings}


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}"


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    runs = results["predict"]
    bare = median_of(runs["bare ASGI + orjson"], "requests_per_s")
    lines = [
        f"Machine: {results['machine']}. Date: {results['date']}. Command: "
        f"`python benchmarks/wrk/compare.py --rounds {args.rounds} --seconds {args.seconds}` "
        f"(wrk -t1 -c100, {args.seconds} s per run, medians of {args.rounds} rounds; server "
        f"and wrk pinned to different cores).",
        "",
        "| single predict | requests/s | share of bare | p50 ms | p99 ms | errors "
        "| CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, name_runs in runs.items():
        rate = median_of(name_runs, "requests_per_s")
        lines.append(
            f"| {name} | {rate:,.0f} | {rate / bare:.0%} | {median_of(name_runs, 'p50_ms'):.2f} | "
            f"{median_of(name_runs, 'p99_ms'):.2f} | {sum(r['errors'] for r in name_runs)} | "
            f"{median_of(name_runs, 'cpu_us_per_request'):.0f} |"
        )
    large = results["large"]
    base = statistics.median(large["seconds"]["bare app accepts the body"])
    lines += [
        "",
        f"| {large['points']:,} points ({large['body_mb']:.0f} MB body), client to last byte "
        f"| median s | times bare |",
        "|---|---:|---:|",
    ]
    for name, seconds in large["seconds"].items():
        median = statistics.median(seconds)
        lines.append(f"| {name} | {median:.3f} | {median / base:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
