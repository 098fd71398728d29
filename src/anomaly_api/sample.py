"""Sample data in the original service's ``sample.csv`` format.

``timestamp,value``: one point a second from a fixed start, values uniform in
[0, 200], as the original generator wrote them. Seeded, so runs are repeatable.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SAMPLE_START = 1_691_000_000


def sample_points(points: int = 1000, seed: int = 42) -> tuple[list[int], list[float]]:
    """``points`` timestamps one second apart and uniform values in [0, 200].

    >>> timestamps, values = sample_points(3)
    >>> timestamps
    [1691000000, 1691000001, 1691000002]
    >>> all(0 <= v <= 200 for v in values)
    True
    """
    rng = np.random.default_rng(seed)
    timestamps = list(range(SAMPLE_START, SAMPLE_START + points))
    values = [round(float(v), 4) for v in rng.uniform(0.0, 200.0, points)]
    return timestamps, values


def write_sample(path: Path, points: int = 1000, seed: int = 42) -> Path:
    """Write ``timestamp,value`` rows to ``path``."""
    timestamps, values = sample_points(points, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        writer.writerows(zip(timestamps, values, strict=True))
    return path


def read_sample(path: Path) -> tuple[list[int], list[float]]:
    """Read a ``timestamp,value`` CSV as written by :func:`write_sample`."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [int(row["timestamp"]) for row in rows], [float(row["value"]) for row in rows]
