from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from anomaly_api.storage.codec import (
    decode_timestamps,
    decode_values,
    encode_timestamps,
    encode_values,
)


@given(hnp.arrays(np.int64, st.integers(0, 500), elements=st.integers(-(2**40), 2**40)))
def test_timestamps_round_trip(timestamps: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_timestamps(encode_timestamps(timestamps)), timestamps)


@given(hnp.arrays(np.float64, st.integers(0, 500), elements=st.floats(allow_nan=False)))
def test_values_round_trip(values: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_values(encode_values(values)), values)


def test_regular_timestamps_are_compact() -> None:
    timestamps = np.arange(100_000, dtype=np.int64) * 60 + 1_691_000_000
    assert len(encode_timestamps(timestamps)) < 8 * 100_000 / 50
