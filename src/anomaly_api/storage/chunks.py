"""Observed points stored in chunks: one row per series per save, not one per point.

A save writes each series' new points as one row (``first``/``last`` timestamp, ``count``
and ``points``, the packed points); the stores read, count and trim through the helpers
here, so both keep the same format. With one row per point, a save of 10^4 series
observing ~10 points a second each wrote 10^5 rows a second into an index ordered by
series, touching a page per series: ~4.9 µs a point in SQLite, against ~0.9 µs with a
chunk per series (``docs/streams.md`` has the figures).

**Format.** Each point is 8 big-endian IEEE-754 doubles: timestamp, value, version,
score, anomaly (0 or 1), expected, lower, upper, where an unwatched side's edge (None, or
infinite while unsaved) is stored as it is: ``inf``/``-inf``, or NaN for None. Big-endian
is what PostgreSQL's ``float8send`` writes, so its migration packs old rows in SQL.
Timestamps (|t| < 2.6e11) and versions are integers far below 2**53, exact as doubles.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np

from anomaly_api.detectors.series import FloatArray, IntArray
from anomaly_api.storage.base import StreamPoint

FIELDS = 8
DTYPE = np.dtype(">f8")
MIGRATION_CHUNK = 1024
"""Points per chunk when old per-point rows are converted."""


@lru_cache(maxsize=64)
def _packer(count: int) -> struct.Struct:
    return struct.Struct(f">{count * FIELDS}d")


def pack(points: Sequence[StreamPoint]) -> bytes:
    """The points, oldest first, as one chunk's bytes."""
    try:
        return _packer(len(points)).pack(*chain.from_iterable(points))
    except (TypeError, struct.error):  # an edge is None (points read back, or migrated)
        return np.array(points, dtype=np.float64).astype(DTYPE).tobytes()


def unpack(blob: bytes) -> FloatArray:
    """A chunk's points as an (n, 8) array of native doubles."""
    return np.frombuffer(blob, dtype=DTYPE).reshape(-1, FIELDS).astype(np.float64)


def chunk_row(series_id: str, points: Sequence[StreamPoint]) -> tuple[Any, ...]:
    """``(series_id, first, last, count, points)`` for a non-empty run of points."""
    return (series_id, int(points[0][0]), int(points[-1][0]), len(points), pack(points))


def news(points: Sequence[StreamPoint], saved_until: int | None) -> Sequence[StreamPoint]:
    """The points later than ``saved_until``, the series' last timestamp the store held
    before this save: every point observed up to it was saved with it, so a save that is
    sent again after its answer was lost does not store its points twice."""
    if saved_until is None or not points or points[0][0] > saved_until:
        return points
    return [point for point in points if point[0] > saved_until]


def newest(
    chunks: Iterable[tuple[int, bytes]], after: int, before: int, limit: int
) -> tuple[IntArray, FloatArray]:
    """Timestamps and values of up to ``limit`` of the newest points strictly between
    ``after`` and ``before``, oldest first, from ``(count, points)`` chunks given newest
    first (those that may hold such points)."""
    parts: list[FloatArray] = []
    found = 0
    for _, blob in chunks:
        array = unpack(blob)
        array = array[(array[:, 0] > after) & (array[:, 0] < before)]
        parts.append(array)
        found += len(array)
        if found >= limit:
            break
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    points = np.concatenate(parts[::-1])[-limit:] if limit > 0 else np.empty((0, FIELDS))
    return points[:, 0].astype(np.int64), points[:, 1].copy()


def count_between(
    chunks: Iterable[tuple[int, int, int, bytes | None]], after: int, before: int
) -> int:
    """How many points lie strictly between ``after`` and ``before``, from ``(first,
    last, count, points)`` chunks that may hold some; ``points`` may be None for a chunk
    wholly inside."""
    total = 0
    for first, last, count, blob in chunks:
        if first > after and last < before:
            total += count
        elif blob is not None:
            stamps = unpack(blob)[:, 0]
            total += int(np.count_nonzero((stamps > after) & (stamps < before)))
    return total


def as_points(blob: bytes) -> list[StreamPoint]:
    """A chunk's points as the stores export them (None for an unwatched side)."""
    return [
        (
            int(t),
            float(v),
            int(version),
            float(score),
            bool(anomaly),
            float(expected),
            lower if math.isfinite(lower) else None,
            upper if math.isfinite(upper) else None,
        )
        for t, v, version, score, anomaly, expected, lower, upper in unpack(blob).tolist()
    ]


def trim_plan(
    chunks: Iterable[tuple[int, int]], keep: int
) -> tuple[list[int], tuple[int, int] | None, int]:
    """Which chunks to drop to keep the newest ``keep`` points, from ``(first, count)``
    given newest first: the ``first`` of each chunk to delete, the chunk to cut (its
    ``first`` and how many of its newest points stay) or None, and the points kept."""
    kept = 0
    drop: list[int] = []
    cut: tuple[int, int] | None = None
    for first, count in chunks:
        if kept >= keep:
            drop.append(first)
        elif kept + count > keep:
            cut = (first, keep - kept)
            kept = keep
        else:
            kept += count
    return drop, cut, kept
