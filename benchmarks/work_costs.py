"""Each detector's declared cost per point (``Detector.work_s``, what the per-request
work budget ``ANOMALY_MAX_REQUEST_WORK_S`` is checked against) next to what fitting and
scoring cost on this machine.

Usage: ``python benchmarks/work_costs.py [--points 20000 100000] [--rounds 3]``

For each detector (defaults, plus the costliest parameters of the window-based ones) and
each size: a sine with noise, fitted and then scored in one batch, timed with
``time.process_time`` (this process's CPU); the median of ``--rounds``. Printed: the
measured and the estimated CPU seconds and their ratio. An estimate is meant to be at
or above what is measured (ratio >= 1) on the 2-core machine it was measured on; a much
faster or slower machine shifts every ratio alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from anomaly_api.detectors import DETECTORS, Series

CASES: list[tuple[str, dict[str, Any]]] = [
    *((name, {}) for name in DETECTORS),
    ("hampel", {"window": 1000}),
    ("adaptive", {"window": 1000}),
    ("seasonal", {"period": "weekly"}),
    ("pattern", {"history": 100}),
    ("pattern", {"history": 8640, "window": 288}),
]


def measure(name: str, params: dict[str, Any], points: int, rounds: int) -> float:
    rng = np.random.default_rng(0)
    times = np.arange(points, dtype=np.float64) * 300
    values = 10 + np.sin(np.arange(points) * 2 * np.pi / 288) + rng.normal(0, 0.3, points)
    taken = []
    for _ in range(rounds):
        started = time.process_time()
        detector = DETECTORS[name](params).fit(Series.from_arrays(times, values))
        detector.score(times, values)
        taken.append(time.process_time() - started)
    return statistics.median(taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{'detector':10s} {'parameters':36s} {'points':>8s} {'measured':>9s} "
        f"{'estimate':>9s} {'ratio':>6s}"
    )
    for name, params in CASES:
        detector = DETECTORS[name]
        for points in args.points:
            rounds = 1 if name == "pattern" else args.rounds
            if name == "pattern" and points > 20_000:
                continue  # a pattern model scores ~3,000 points a second: too slow to wait for
            measured = measure(name, params, points, rounds)
            estimate = detector.work_s(detector.validate_params(params), points, points)
            print(
                f"{name:10s} {params!s:36s} {points:8d} {measured:8.3f}s {estimate:8.3f}s "
                f"{estimate / measured:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
