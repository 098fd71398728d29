"""The PostgreSQL store at the issue's scale: 10^5 series, several versions each.

Usage: ``python benchmarks/postgres_scale.py [--series 100000] [--versions 3] [--rounds 3]
[--seconds 10] [--out DIR] [--postgresql-url postgresql://postgres@127.0.0.1:5432/test]``

A throwaway database (``anomaly_bench_<random>``, dropped at the end unless ``--keep``) is
created through ``--postgresql-url`` (an admin URL; only its database name is replaced)
and filled directly through the store's copy API (``import_versions``, one transaction
per ``--batch`` versions): ``--series`` series of ``--versions`` zscore versions each,
the fitted state of one real model varied a little per version, 100 training points
each. Seeding over HTTP would take 300,000 fits; what is measured here is what a
replica does with a store that is already that large. Then:

a. **Replica start.** Wall time from spawning ``anomaly-api serve`` (pinned to one core)
   to its first 200 from ``GET /healthcheck``, ``--starts`` times, on the full store and
   on an empty one, alternately (one discarded start of each first). Target: under 2 s,
   nothing loaded eagerly. For scale, the time Python takes to import what ``serve``
   imports, in a fresh interpreter on the same core.
b. **Predicts on random series, cache warm.** One server with a model cache larger
   than the series count; each series is predicted once (``--warm-concurrency``
   keep-alive connections, so every model is read from the store once), then
   ``wrk -t1 -c100`` for ``--seconds`` per run on one series and on a random series
   per request (``postgres/random_predict.lua``, predict.lua's body), latest and
   ``?version=N`` (N the newest version, so both share the cached models), each round
   starting with the next target. Target: random within 20 % of one series. Also
   recorded: ``models_cached`` after warming and the store reads (cache misses, from
   ``/metrics``) during each run, which should be zero.
c. **Listing.** ``GET /series?limit=…&after=…`` from the first page to the last: the
   count must equal ``--series`` and ids must be strictly increasing.

wrk runs on one core and the server on the other (PostgreSQL is not pinned). Prints a
markdown table and writes ``postgres_scale.json`` (and ``.md``) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psycopg
from psycopg import sql

from anomaly_api.bench_server import free_port
from anomaly_api.bench_wrk import CLIENT_CORE, SERVER_CORE, run_wrk

HERE = Path(__file__).resolve().parent
RANDOM_LUA = HERE / "postgres" / "random_predict.lua"
PREDICT_BODY = b'{"timestamp": 1691001000, "value": 150.5}'
TRAINING_POINTS = 100
METRICS_FLUSH_S = 1.5
"""A little longer than the service's metrics flush interval (1 s)."""
START_TARGET_S = 2.0
THROUGHPUT_TARGET = 0.8
SERVE_IMPORTS = (
    "import anomaly_api.cli, uvicorn, uvloop, httptools, anomaly_api.api.app, "
    "anomaly_api.storage.postgresql"
)


def series_id(index: int) -> str:
    """Ids that sort as their numbers do (random_predict.lua builds the same ones)."""
    return f"s{index:07d}"


# -- processes and HTTP (as in wrk/compare.py) -------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(port: int, path: str, timeout: float = 60.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def spawn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [
                "taskset",
                "-c",
                SERVER_CORE,
                str(Path(sys.executable).parent / "anomaly-api"),
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )


def wait_healthy(
    process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll ``/healthcheck`` every 10 ms until it answers 200; return its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: see {log}")
        try:
            status, body = get(port, "/healthcheck", timeout=10)
            if status == 200:
                answer: dict[str, Any] = json.loads(body)
                return answer
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"the server on port {port} was not healthy within {timeout:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wrk(port: int, count: int, query: str, seconds: int, pid: int) -> dict[str, Any]:
    """One wrk run on a random series among ``count``: rate, latency, errors, CPU/request."""
    url = f"http://127.0.0.1:{port}"
    return run_wrk(url, RANDOM_LUA, seconds, pid, (str(count), query))


def cache_misses(port: int) -> float:
    """The server's ``anomaly_model_cache_misses_total`` (store reads of a model)."""
    _, body = get(port, "/metrics")
    match = re.search(rb"^anomaly_model_cache_misses_total(?:\{[^}]*\})? (\S+)$", body, re.M)
    return float(match.group(1)) if match else float("nan")


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


# -- the throwaway databases -----------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name``."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(admin_url)._replace(path="/" + name))


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def seed(url: str, series: int, versions: int, batch: int) -> dict[str, Any]:
    """Fill the store through ``import_versions``: ``series`` x ``versions`` zscore models."""
    from anomaly_api.detectors import Series, detector_class
    from anomaly_api.storage import ModelRecord, StoredVersion, open_store

    rng = np.random.default_rng(7)
    stamps = 1_690_000_000 + 60 * np.arange(TRAINING_POINTS, dtype=np.int64)
    trainings = [
        Series.from_arrays(stamps, rng.normal(100.0, 10.0, TRAINING_POINTS)) for _ in range(16)
    ]
    fitted = detector_class("zscore")(None).fit(trainings[0])
    params, state = fitted.params, fitted.state()
    created = time.time() - 86_400
    store = open_store(url, durable=False, pool_size=2)
    started = time.perf_counter()
    inserted = 0
    pending: list[Any] = []

    def flush() -> None:
        nonlocal inserted
        counters = {stored.record.series_id: versions for stored in pending}
        inserted += store.import_versions(pending, counters)
        pending.clear()

    try:
        for index in range(series):
            name = series_id(index)
            for version in range(1, versions + 1):
                training = trainings[(index + version) % len(trainings)]
                shift = float(rng.normal(0.0, 1.0))
                pending.append(
                    StoredVersion(
                        ModelRecord(
                            series_id=name,
                            version=version,
                            detector="zscore",
                            params=params,
                            state={"mean": state["mean"] + shift, "std": state["std"]},
                            points_used=TRAINING_POINTS,
                            points_stored=TRAINING_POINTS,
                            first_timestamp=int(stamps[0]),
                            last_timestamp=int(stamps[-1]),
                            created_at=created + index * 0.01 + version,
                        ),
                        training,
                    )
                )
                if len(pending) >= batch:
                    flush()
            if (index + 1) % max(1, series // 10) == 0:
                print(f"seeded {index + 1:,} series", file=sys.stderr)
        if pending:
            flush()
    finally:
        store.close()
    seconds = time.perf_counter() - started
    if inserted != series * versions:
        raise RuntimeError(f"seeded {inserted} versions, expected {series * versions}")
    with psycopg.connect(url, autocommit=True) as connection:
        # A store this size has long been analysed by autovacuum; do it now, so the
        # planner does not start from an empty table's estimates.
        connection.execute("ANALYZE")
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return {
        "versions": inserted,
        "seconds": seconds,
        "versions_per_s": inserted / seconds,
        "database_mb": (row[0] if row else 0) / 1e6,
    }


def prepare_empty(url: str) -> None:
    """Create the schema, so an empty store starts as the full one does (migrated)."""
    from anomaly_api.storage import open_store

    store = open_store(url)
    try:
        store.ping()
    finally:
        store.close()


# -- (a) start-up ----------------------------------------------------------------------


def start_once(url: str, log: Path) -> tuple[float, dict[str, Any]]:
    port = free_port()
    env = {**os.environ, "ANOMALY_DATABASE_URL": url, "ANOMALY_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    process = spawn(env, port, log)
    try:
        health = wait_healthy(process, port, log)
        seconds = time.perf_counter() - started
    finally:
        stop(process)
    return seconds, health


def import_seconds() -> float:
    """A fresh interpreter importing what ``serve`` imports, on the server's core."""
    started = time.perf_counter()
    subprocess.run(["taskset", "-c", SERVER_CORE, sys.executable, "-c", SERVE_IMPORTS], check=True)
    return time.perf_counter() - started


def measure_starts(urls: dict[str, str], starts: int, log: Path) -> dict[str, Any]:
    timings: dict[str, list[float]] = {name: [] for name in urls}
    trained: dict[str, Any] = {}
    cached: dict[str, list[Any]] = {name: [] for name in urls}
    for url in urls.values():
        start_once(url, log)  # discarded: fills the OS page cache and PostgreSQL's
    imports = []
    for _ in range(starts):
        for name, url in urls.items():
            seconds, health = start_once(url, log)
            timings[name].append(seconds)
            trained[name] = health.get("series_trained")
            cached[name].append(health.get("models_cached"))
            print(f"start, {name}: {seconds:.3f} s", file=sys.stderr)
        imports.append(import_seconds())
    return {
        "seconds": timings,
        "series_trained": trained,
        "models_cached_at_first_200": cached,
        "import_seconds": imports,
    }


# -- (b) throughput --------------------------------------------------------------------


async def predict_each(port: int, count: int, query: str, concurrency: int) -> dict[str, Any]:
    """POST one predict to every series, ``concurrency`` keep-alive connections at once."""
    statuses: Counter[int] = Counter()
    ids = iter(range(count))
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for index in ids:
                url = f"http://127.0.0.1:{port}/predict/{series_id(index)}{query}"
                async with session.post(url, data=PREDICT_BODY, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "predicts_per_s": count / seconds,
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
    }


def measure_throughput(
    port: int, pid: int, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    warm = asyncio.run(predict_each(port, args.series, "", args.warm_concurrency))
    print(f"warmed: {warm}", file=sys.stderr)
    time.sleep(METRICS_FLUSH_S)
    _, body = get(port, "/healthcheck")
    health = json.loads(body)
    warm.update(
        models_cached=health.get("models_cached"),
        store_reads=cache_misses(port),
        server_rss_mb=rss_mb(pid),
    )
    pinned = f"?version={args.versions}"
    targets = {
        "one series, latest": (1, ""),
        f"random of {args.series:,}, latest": (args.series, ""),
        f"one series, {pinned}": (1, pinned),
        f"random of {args.series:,}, {pinned}": (args.series, pinned),
    }
    for count, query in targets.values():
        wrk(port, count, query, 2, pid)  # warm-up, discarded
    time.sleep(METRICS_FLUSH_S)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    names = list(targets)
    misses = cache_misses(port)
    for round_ in range(args.rounds):
        # Each round starts with a different target, so that a slow spell of the machine
        # does not always fall on the same one.
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            count, query = targets[name]
            run = wrk(port, count, query, args.seconds, pid)
            time.sleep(METRICS_FLUSH_S)
            now = cache_misses(port)
            run["store_reads"] = now - misses
            misses = now
            runs[name].append(run)
            print(f"round {round_ + 1}: {name}: {run}", file=sys.stderr)
    _, body = get(port, "/healthcheck")
    warm["models_cached_after_runs"] = json.loads(body).get("models_cached")
    return warm, runs


# -- (c) listing -----------------------------------------------------------------------


def walk_series(port: int, page_size: int, versions: int) -> dict[str, Any]:
    """Page through ``GET /series`` on one keep-alive connection; check order and count."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    after: str | None = None
    previous = ""
    count = pages = 0
    increasing = True
    wrong_versions = 0
    totals: set[int] = set()
    page_seconds: list[float] = []
    started = time.perf_counter()
    try:
        while True:
            query = {"limit": str(page_size)}
            if after is not None:
                query["after"] = after
            page_started = time.perf_counter()
            connection.request("GET", "/series?" + urllib.parse.urlencode(query))
            response = connection.getresponse()
            body = response.read()
            page_seconds.append(time.perf_counter() - page_started)
            if response.status != 200:
                raise RuntimeError(f"GET /series: {response.status} {body[:200]!r}")
            page = json.loads(body)
            pages += 1
            totals.add(page["total"])
            for item in page["series"]:
                increasing = increasing and item["series_id"] > previous
                previous = item["series_id"]
                wrong_versions += (
                    item["latest_version"] != str(versions) or item["version_count"] != versions
                )
            count += len(page["series"])
            after = page["next_after"]
            if after is None:
                break
    finally:
        connection.close()
    return {
        "page_size": page_size,
        "pages": pages,
        "series": count,
        "totals_reported": sorted(totals),
        "strictly_increasing": increasing,
        "wrong_version_counts": wrong_versions,
        "seconds": time.perf_counter() - started,
        "page_ms_median": statistics.median(page_seconds) * 1e3,
        "page_ms_max": max(page_seconds) * 1e3,
    }


def healthcheck_ms(port: int, repeats: int = 20) -> float:
    """Median time of ``GET /healthcheck`` on a running server (it counts the series)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        status, _ = get(port, "/healthcheck")
        times.append(time.perf_counter() - started)
        assert status == 200, status
    return statistics.median(times) * 1e3


# -- the run ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--starts", type=int, default=5, help="measured starts per store")
    parser.add_argument("--batch", type=int, default=2000, help="versions per transaction")
    parser.add_argument("--page-size", type=int, default=1000, help="GET /series limit")
    parser.add_argument("--warm-concurrency", type=int, default=32)
    parser.add_argument(
        "--cache-size", type=int, default=None, help="model cache; default 1.1 x --series"
    )
    parser.add_argument("--postgresql-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("postgres_scale: needs wrk and taskset", file=sys.stderr)
        return 2
    if not 1 <= args.series <= 10_000_000 or args.versions < 1:
        parser.error("--series must be 1..10,000,000 and --versions at least 1")
    cache_size = args.cache_size or max(1000, int(args.series * 1.1))
    os.sched_setaffinity(0, {int(CLIENT_CORE)})  # the client side stays off the server's core
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / "postgres_scale.server.log").resolve()
    log.write_text("")
    name = f"anomaly_bench_{secrets.token_hex(4)}"
    names = {"full": name, "empty": name + "_empty"}
    urls = {kind: database_url(args.postgresql_url, db) for kind, db in names.items()}
    results: dict[str, Any] = {
        "machine": machine(args.postgresql_url),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": command(args),
        "series": args.series,
        "versions": args.versions,
        "cache_size": cache_size,
        "databases": names,
    }
    for db in names.values():
        create_database(args.postgresql_url, db)
    try:
        prepare_empty(urls["empty"])
        results["seed"] = seed(urls["full"], args.series, args.versions, args.batch)
        print(f"seeded: {results['seed']}", file=sys.stderr)
        results["start"] = measure_starts(
            {f"{args.series:,} series": urls["full"], "empty store": urls["empty"]},
            args.starts,
            log,
        )
        port = free_port()
        env = {
            **os.environ,
            "ANOMALY_DATABASE_URL": urls["full"],
            "ANOMALY_LOG_LEVEL": "warning",
            "ANOMALY_MODEL_CACHE_SIZE": str(cache_size),
        }
        server = spawn(env, port, log)
        try:
            wait_healthy(server, port, log)
            results["warm"], results["predict"] = measure_throughput(port, server.pid, args)
            results["walk"] = walk_series(port, args.page_size, args.versions)
            results["healthcheck_ms"] = healthcheck_ms(port)
        finally:
            stop(server)
    finally:
        if not args.keep:
            for db in names.values():
                drop_database(args.postgresql_url, db)
    if not log.read_bytes():
        log.unlink()  # kept only when the servers had something to say
    (args.out / "postgres_scale.json").write_text(json.dumps(results, indent=2))
    table = markdown(results, args)
    (args.out / "postgres_scale.md").write_text(table + "\n")
    print(table)
    return 0


def machine(admin_url: str) -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(admin_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    server = row[0].split()[0] if row else "?"
    return f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}, PostgreSQL {server}"


def command(args: argparse.Namespace) -> str:
    return (
        f"python benchmarks/postgres_scale.py --series {args.series} --versions {args.versions} "
        f"--rounds {args.rounds} --seconds {args.seconds} --starts {args.starts}"
    )


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    seed, start, warm, runs, walk = (
        results[key] for key in ("seed", "start", "warm", "predict", "walk")
    )
    lines = [
        f"Machine: {results['machine']}. Date: {results['date']}. Command: `{results['command']}`.",
        "",
        f"Store: {results['series']:,} series x {results['versions']} versions = "
        f"{seed['versions']:,} versions ({TRAINING_POINTS} training points each, "
        f"{seed['database_mb']:.0f} MB), seeded through `import_versions` in "
        f"{seed['seconds']:.1f} s ({seed['versions_per_s']:,.0f} versions/s).",
        "",
        f"| (a) replica start, spawn to first 200 from /healthcheck | median s | min s "
        f"| max s | starts | series_trained | models_cached | under {START_TARGET_S:g} s |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, seconds in start["seconds"].items():
        median = statistics.median(seconds)
        lines.append(
            f"| {name} | {median:.3f} | {min(seconds):.3f} | {max(seconds):.3f} "
            f"| {len(seconds)} | {start['series_trained'][name]} "
            f"| {max(start['models_cached_at_first_200'][name])} "
            f"| {'yes' if median < START_TARGET_S else 'NO'} |"
        )
    imports = start["import_seconds"]
    lines.append(
        f"| (for scale) fresh Python importing what `serve` imports | "
        f"{statistics.median(imports):.3f} | {min(imports):.3f} | {max(imports):.3f} "
        f"| {len(imports)} | | | |"
    )
    names = list(runs)
    lines += [
        "",
        f"(b) Cache warmed by predicting each series once ({warm['seconds']:.1f} s, "
        f"{warm['predicts_per_s']:,.0f}/s, answers {warm['statuses']}); models_cached "
        f"{warm['models_cached']} after warming, {warm['models_cached_after_runs']} after "
        f"the runs (cache size {results['cache_size']:,}); server RSS "
        f"{warm['server_rss_mb']:.0f} MB. wrk -t1 -c100, {args.seconds} s per run, "
        f"medians of {args.rounds} rounds.",
        "",
        "| predict | requests/s | vs one series | p50 ms | p99 ms | errors "
        "| CPU µs/request | vs one series, by CPU | store reads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rate = median_of(runs[name], "requests_per_s")
        cpu = median_of(runs[name], "cpu_us_per_request")
        baseline = runs["one series, " + name.rsplit(", ", 1)[1]]
        ratio = rate / median_of(baseline, "requests_per_s")
        # CPU time per request is steadier than requests/s on a shared machine; its
        # inverse ratio is the throughput ratio a server with a core to itself would see.
        cpu_ratio = median_of(baseline, "cpu_us_per_request") / cpu
        lines.append(
            f"| {name} | {rate:,.0f} | {ratio:.0%} "
            f"| {median_of(runs[name], 'p50_ms'):.2f} | {median_of(runs[name], 'p99_ms'):.2f} "
            f"| {sum(run['errors'] for run in runs[name])} | {cpu:.0f} | {cpu_ratio:.0%} "
            f"| {sum(run['store_reads'] for run in runs[name]):.0f} |"
        )
    lines.append(
        f"\nTarget: random series at least {THROUGHPUT_TARGET:.0%} of one series, "
        "with a warm cache."
    )
    ok = walk["series"] == results["series"] and walk["strictly_increasing"]
    lines += [
        "",
        "| (c) GET /series, first page to last | pages | series | ids increasing "
        "| total s | median page ms | max page ms |",
        "|---|---:|---:|---|---:|---:|---:|",
        f"| limit={walk['page_size']} | {walk['pages']} | {walk['series']:,} "
        f"| {'yes' if walk['strictly_increasing'] else 'NO'} | {walk['seconds']:.2f} "
        f"| {walk['page_ms_median']:.1f} | {walk['page_ms_max']:.1f} |",
        "",
        f"Listing {'complete and ordered' if ok else 'WRONG'}; totals reported "
        f"{walk['totals_reported']}; series with an unexpected version count: "
        f"{walk['wrong_version_counts']}. GET /healthcheck on the running server (it counts "
        f"the series): median {results['healthcheck_ms']:.1f} ms.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
