"""Observed points in chunks: what the stores read back must be what a row per point gave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomaly_api.storage.base import StreamPoint
from anomaly_api.storage.chunks import (
    anomaly_codes,
    as_points,
    chunk_row,
    count_between,
    incident_of,
    newest,
    news,
    pack_point,
    pack_rows,
    timestamp_of,
    trim_plan,
    unpack,
)


def stream(count: int, seed: int = 0) -> list[StreamPoint]:
    rng = np.random.default_rng(seed)
    stamps = np.cumsum(rng.integers(1, 100, count)) + 1_700_000_000
    return [
        (
            int(stamp),
            float(rng.normal()),
            int(rng.integers(1, 5)),
            float(rng.random()),
            bool(rng.random() < 0.1),
            float(rng.normal()),
            -math.inf if index % 3 == 0 else float(rng.normal()) - 5,
            None if index % 5 == 0 else float(rng.normal()) + 5,
        )
        for index, stamp in enumerate(stamps)
    ]


def chunked(points: list[StreamPoint], sizes: list[int]) -> list[tuple[int, int, int, bytes]]:
    """``(first, last, count, points)`` rows, oldest first."""
    rows, start = [], 0
    for size in sizes:
        run = [pack_point(point) for point in points[start : start + size]]
        _, first, last, count, blob = chunk_row("s", run)
        rows.append((first, last, count, blob))
        start += size
    return rows


def test_a_chunk_round_trips_every_field_with_unwatched_edges_as_none() -> None:
    points = stream(50)
    assert as_points(b"".join(pack_point(point) for point in points)) == [
        (*point[:6], *(None if edge is None or math.isinf(edge) else edge for edge in point[6:]))
        for point in points
    ]
    rows = unpack(b"".join(pack_point(point) for point in points))
    assert rows.shape == (50, 8)
    assert pack_rows(rows) == [pack_point(point) for point in points]
    assert [timestamp_of(point) for point in pack_rows(rows)] == [p[0] for p in points]


def test_the_anomaly_field_keeps_the_incident_marker_and_reads_old_flags() -> None:
    from anomaly_api.detectors.incidents import NAMES, NEW, NONE, ONGOING

    flags = np.array([False, True, True, True, False])
    marks = np.array([NONE, NEW, ONGOING, NONE, NEW], dtype=np.int8)  # the last: ignored
    codes = anomaly_codes(flags, marks)
    assert codes.tolist() == [0.0, 2.0, 3.0, 1.0, 0.0]
    assert [incident_of(code) for code in codes] == [None, "new", "ongoing", None, None]
    assert [incident_of(code) for code in codes[1:3]] == [NAMES[NEW], NAMES[ONGOING]]
    assert anomaly_codes(flags, None).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # unmarked
    # A chunk saved before the markers (anomaly 0 or 1) reads back as it was: no marker.
    old = [(1, 1.0, 1, 0.9, True, 1.0, 0.0, 2.0)]
    (point,) = as_points(pack_point(old[0]))
    assert point[4] == 1 and bool(point[4]) and incident_of(point[4]) is None
    # The marker goes through a save and an export (migrate packs what stores export).
    rows = unpack(b"".join(pack_rows(np.column_stack([np.arange(5.0)] * 4 + [codes] * 4))))
    assert [incident_of(code) for code in rows[:, 4]] == [None, "new", "ongoing", None, None]


@pytest.mark.parametrize("limit", [0, 1, 7, 60, 1000])
@pytest.mark.parametrize(("after", "before"), [(-1, 2**63 - 1), (0, 0), ("mid", "late")])
def test_newest_and_counts_match_a_row_per_point(limit: int, after: object, before: object) -> None:
    points = stream(100, seed=limit)
    rows = chunked(points, [1, 30, 9, 40, 20])
    stamps = [point[0] for point in points]
    low = stamps[35] if after == "mid" else int(after)  # type: ignore[call-overload]
    high = stamps[80] if before == "late" else int(before)  # type: ignore[call-overload]
    inside = [point for point in points if low < point[0] < high]
    expected = inside[-limit:] if limit else []
    newest_first = [(count, blob) for _, _, count, blob in reversed(rows)]
    timestamps, values = newest(newest_first, low, high, limit)
    assert timestamps.tolist() == [point[0] for point in expected]
    assert values.tolist() == [point[1] for point in expected]
    assert timestamps.dtype == np.int64
    assert count_between(rows, low, high) == len(inside)


def test_trimming_keeps_exactly_the_newest_points() -> None:
    sizes = [10, 25, 5, 40]
    rows = chunked(stream(80), sizes)
    newest_first = [(first, count) for first, _, count, _ in reversed(rows)]
    assert trim_plan(newest_first, 100) == ([], None, 80)
    assert trim_plan(newest_first, 45) == ([rows[1][0], rows[0][0]], None, 45)
    assert trim_plan(newest_first, 42) == ([rows[1][0], rows[0][0]], (rows[2][0], 2), 42)
    assert trim_plan(newest_first, 0) == ([row[0] for row in reversed(rows)], None, 0)


def test_a_save_sent_again_stores_only_what_is_new() -> None:
    points = [pack_point(point) for point in stream(10)]
    assert news(points, None) is points
    assert news(points, timestamp_of(points[0]) - 1) is points
    assert news(points, timestamp_of(points[3])) == points[4:]
    assert news(points, timestamp_of(points[-1])) == []
