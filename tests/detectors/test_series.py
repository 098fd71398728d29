from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly_api.detectors import Series
from anomaly_api.errors import InvalidInput


def test_sorts_unsorted_points_and_keeps_pairs_together() -> None:
    series = Series.from_arrays([3, 1, 2], [30.0, 10.0, 20.0])
    assert series.timestamps.tolist() == [1, 2, 3]
    assert series.values.tolist() == [10.0, 20.0, 30.0]


def test_keeps_duplicate_timestamps_in_their_order() -> None:
    series = Series.from_arrays([5, 1, 5, 1], [1.0, 2.0, 3.0, 4.0])
    assert series.timestamps.tolist() == [1, 1, 5, 5]
    assert series.values.tolist() == [2.0, 4.0, 1.0, 3.0]


@pytest.mark.parametrize(
    ("timestamps", "values", "message"),
    [
        ([1, 2], [1.0], "timestamps has 2 items but values has 1"),
        ([], [], "values is empty"),
        ([1, 2], [1.0, float("nan")], r"values\[1\] is not a finite number"),
        ([1, 2], [float("inf"), 1.0], r"values\[0\] is not a finite number"),
        ([1, 2**62], [1.0, 2.0], r"timestamps\[1\] = .* outside the supported range"),
        ([1, 2], [[1.0], [2.0]], "flat list"),
    ],
)
def test_rejects_bad_data_naming_the_field(
    timestamps: list[int], values: list[Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        Series.from_arrays(timestamps, values)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2_000_000_000),
            st.floats(allow_nan=False, allow_infinity=False, width=64),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_sorted_and_a_permutation_of_the_input(points: list[tuple[int, float]]) -> None:
    series = Series.from_arrays([t for t, _ in points], [v for _, v in points])
    assert bool(np.all(np.diff(series.timestamps) >= 0))
    assert sorted(zip(series.timestamps.tolist(), series.values.tolist(), strict=True)) == sorted(
        points
    )


def test_tail_keeps_the_most_recent_points() -> None:
    series = Series.from_arrays([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    assert series.tail(2).values.tolist() == [3.0, 4.0]
    assert series.tail(10) is series
    assert len(series.tail(0)) == 0
