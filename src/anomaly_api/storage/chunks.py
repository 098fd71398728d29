"""Observed points stored in chunks: one row per series per save, not one per point.

A save writes each series' new points as one row (``first``/``last`` timestamp, ``count``
and ``points``, the packed points); the stores read, count and trim through the helpers
here, so both keep the same format. With one row per point, a save of 10^4 series
observing ~10 points a second each wrote 10^5 rows a second into an index ordered by
series, touching a page per series: ~4.9 µs a point in SQLite, against ~0.9 µs with a
chunk per series (``docs/streams.md`` has the figures).

**Format.** Each point is 8 big-endian IEEE-754 doubles: timestamp, value, version,
score, anomaly, expected, lower, upper, where ``anomaly`` is a code (:func:`anomaly_codes`):
0 for a normal point, 2 for an anomalous point that opened an incident, 3 for one of an
incident already open, 1 for an anomalous point whose marker is unknown (saved before the
markers were kept; readers that want the flag test it against 0, as they always did).
An unwatched side's edge (None, or infinite while unsaved) is stored as it is:
``inf``/``-inf``, or NaN for None. Big-endian is what PostgreSQL's ``float8send``
writes, so its migration packs old rows in SQL.
Timestamps (|t| < 2.6e11) and versions are integers far below 2**53, exact as doubles.
A live stream keeps its unsaved points in this form too (:data:`POINT`), so a save joins
their bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from anomaly_api.detectors.series import FloatArray, IntArray
from anomaly_api.storage.base import StreamPoint

FIELDS = 8
DTYPE = np.dtype(">f8")
MIGRATION_CHUNK = 1024
"""Points per chunk when old per-point rows are converted."""


POINT = struct.Struct(">8d")
"""One point as a chunk holds it; a live stream keeps its unsaved points so packed, so
that a save joins them rather than converting each."""
_TIMESTAMP = struct.Struct(">d")


INCIDENT_NAMES = {2: "new", 3: "ongoing"}
"""The incident marker of an ``anomaly`` code; codes 0 and 1 have none."""


def anomaly_codes(anomaly: Any, incident: Any) -> Any:
    """The ``anomaly`` field of points (:mod:`the format <anomaly_api.storage.chunks>`):
    the flag plus the incident marker (:data:`~anomaly_api.detectors.incidents.NEW` 1,
    ``ONGOING`` 2, only on anomalous points); ``incident`` None (not marked) gives 1 for
    anomalous points. Arrays or scalars."""
    flags = np.asarray(anomaly, dtype=np.float64)
    if incident is None:
        return flags
    return flags + np.where(flags != 0, np.asarray(incident, dtype=np.float64), 0.0)


def incident_of(code: float) -> str | None:
    """The wire marker (``"new"``, ``"ongoing"`` or None) of a point's ``anomaly`` code."""
    return INCIDENT_NAMES.get(int(code))


def pack_point(point: StreamPoint) -> bytes:
    """One point (None edges as NaN) as its 64 bytes."""
    try:
        return POINT.pack(*point)
    except struct.error:  # an edge is None (points read back, or migrated)
        return POINT.pack(*(math.nan if field is None else field for field in point))


def pack_rows(rows: FloatArray) -> list[bytes]:
    """Each row of an (n, 8) array of points as its 64 bytes, packed in one pass."""
    raw = np.asarray(rows, dtype=np.float64).astype(DTYPE).tobytes()
    width = POINT.size
    return [raw[start : start + width] for start in range(0, len(raw), width)]


def timestamp_of(packed: bytes) -> int:
    """A packed point's timestamp."""
    return int(_TIMESTAMP.unpack_from(packed)[0])


def unpack(blob: bytes) -> FloatArray:
    """A chunk's points as an (n, 8) array of native doubles."""
    return np.frombuffer(blob, dtype=DTYPE).reshape(-1, FIELDS).astype(np.float64)


def chunk_row(series_id: str, points: Sequence[bytes]) -> tuple[Any, ...]:
    """``(series_id, first, last, count, points)`` for a non-empty run of packed points."""
    return blob_row(series_id, b"".join(points))


def blob_row(series_id: str, blob: bytes) -> tuple[Any, ...]:
    """``(series_id, first, last, count, points)`` for a non-empty chunk's bytes."""
    return (
        series_id,
        timestamp_of(blob),
        int(_TIMESTAMP.unpack_from(blob, len(blob) - POINT.size)[0]),
        len(blob) // POINT.size,
        blob,
    )


def news(points: Sequence[bytes], saved_until: int | None) -> Sequence[bytes]:
    """The packed points later than ``saved_until``, the series' last timestamp the store
    held before this save: every point observed up to it was saved with it, so a save
    that is sent again after its answer was lost does not store its points twice."""
    if saved_until is None or not points or timestamp_of(points[0]) > saved_until:
        return points
    return [point for point in points if timestamp_of(point) > saved_until]


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
    """A chunk's points as the stores export them (None for an unwatched side; the
    ``anomaly`` field as its code, which is truthy for an anomalous point)."""
    return [
        (
            int(t),
            float(v),
            int(version),
            float(score),
            int(anomaly),
            float(expected),
            lower if math.isfinite(lower) else None,
            upper if math.isfinite(upper) else None,
        )
        for t, v, version, score, anomaly, expected, lower, upper in unpack(blob).tolist()
    ]


def points_between(
    blob: bytes, after: int, before: int, anomalies_only: bool = False
) -> list[StreamPoint]:
    """A chunk's points strictly between ``after`` and ``before`` (only the anomalous
    ones with ``anomalies_only``), as :func:`as_points` gives them."""
    array = unpack(blob)
    keep = (array[:, 0] > after) & (array[:, 0] < before)
    if anomalies_only:
        keep &= array[:, 4] != 0
    if not keep.any():
        return []
    return as_points(b"".join(pack_rows(array[keep])))


SCAN_CHUNKS = 256
"""Chunks read per query when paging through a series' points."""


def scan_points(
    chunks: Callable[[int, int], Sequence[tuple[int, bytes]]],
    after: int,
    before: int,
    limit: int,
    anomalies_only: bool = False,
) -> list[StreamPoint]:
    """The first ``limit`` points strictly between ``after`` and ``before`` (only the
    anomalous ones with ``anomalies_only``), read with ``chunks(cursor, count)``: a
    store's query for up to ``count`` of a series' ``(last, points)`` chunks whose
    ``last`` lies after ``cursor`` and whose ``first`` before ``before``, oldest first."""
    found: list[StreamPoint] = []
    cursor = after
    while len(found) < limit:
        # A series' chunks follow each other in time: page through them by their last
        # timestamp, a few at a time, until ``limit`` points are found.
        rows = chunks(cursor, SCAN_CHUNKS)
        for last, blob in rows:
            found.extend(points_between(bytes(blob), after, before, anomalies_only))
            cursor = int(last)
        if len(rows) < SCAN_CHUNKS:
            break
    return found[:limit]


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
