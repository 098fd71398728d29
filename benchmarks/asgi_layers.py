"""What each of the service's outer ASGI layers costs a single predict, in-process.

Usage: ``python benchmarks/asgi_layers.py [--calls 100000] [--rounds 5]``

Each layer wraps an app that does nothing and is called ``--calls`` times with the
scope of a keyed ``POST /predict/s`` (no network, no body); printed is the median over
``--rounds`` of the microseconds per call, the empty app's own first. wrk's figures
(``benchmarks/wrk/compare.py``) vary by tens of percent on a shared machine; this
isolates the layers' own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from anomaly_api.api.asgi.audit import AuditLog
from anomaly_api.api.asgi.auth import Authenticate
from anomaly_api.api.asgi.browsers import BrowserGuard
from anomaly_api.api.asgi.heavy import HeavyQueue
from anomaly_api.api.asgi.quotas import FitQuota
from anomaly_api.auth import Keyring, digest, new_key


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _per_call(app: Any, scope: dict[str, Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await app(dict(scope), None, None)
    return (time.perf_counter() - started) / calls * 1e6


async def _main(calls: int, rounds: int) -> None:
    key = new_key()
    keyring = Keyring()
    keyring.start(lambda: [(digest(key), "bench", ("predict",))])
    try:
        while not keyring.loaded:
            await asyncio.sleep(0.01)
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/predict/s",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", b"34"),
                (b"authorization", b"Bearer " + key.encode()),
            ],
            "client": ("127.0.0.1", 50000),
        }
        layers: list[tuple[str, Any]] = [
            ("no layer", _nothing),
            ("API key check", Authenticate(_nothing, keyring)),
            ("audit log", AuditLog(_nothing)),
            ("browser guard", BrowserGuard(_nothing, [], any_host=True)),
            ("heavy queue", HeavyQueue(_nothing, slots=2, queue=64, wait_s=30)),
            ("fit quota", FitQuota(_nothing, per_minute=600)),
        ]
        for name, app in layers:
            times = [await _per_call(app, scope, calls) for _ in range(rounds)]
            print(f"{name:15s} {statistics.median(times):6.2f} us per call")
    finally:
        keyring.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(_main(args.calls, args.rounds))


if __name__ == "__main__":
    main()
