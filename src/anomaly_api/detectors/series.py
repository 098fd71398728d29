"""``Series``: training data validated once, at the edge of the core.

Every detector receives a ``Series`` and can rely on what it guarantees, so no detector
re-checks its input:

* ``timestamps`` are int64 Unix seconds within the years 1-9999, sorted ascending;
* ``values`` are finite float64, one per timestamp.

Unsorted input is **sorted** (stably, so points that share a timestamp keep their
order) rather than rejected: the original service accepted any order, and a client
that posts a batch assembled from several sources should not have to sort it first.
Duplicate timestamps are kept as separate observations (several readings in the same
second are real data, and NAB's own files contain them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from anomaly_api.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# datetime can represent these, so every accepted timestamp can be shown as a date.
MIN_TIMESTAMP = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z


def finite_values(values: Sequence[float] | npt.ArrayLike, field: str = "values") -> FloatArray:
    """Return ``values`` as a 1-D float64 array, or raise naming the first non-finite item.

    >>> finite_values([1, 2.5])
    array([1. , 2.5])
    >>> finite_values([1.0, float("nan")])
    Traceback (most recent call last):
    ...
    anomaly_api.errors.InvalidInput: values[1] is not a finite number (NaN or infinity)
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"{field} must be a list of numbers", field=field) from exc
    if array.ndim != 1:
        raise InvalidInput(f"{field} must be a flat list of numbers", field=field)
    bad = ~np.isfinite(array)
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidInput(
            f"{field}[{index}] is not a finite number (NaN or infinity)", field=f"{field}[{index}]"
        )
    return array


def checked_timestamps(
    timestamps: Sequence[int] | npt.ArrayLike, field: str = "timestamps"
) -> IntArray:
    """Return ``timestamps`` as int64 seconds, or raise naming the first one out of range."""
    try:
        array = np.asarray(timestamps, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"{field} must be integers (Unix seconds) between {MIN_TIMESTAMP} and {MAX_TIMESTAMP}",
            field=field,
        ) from exc
    if array.ndim != 1:
        raise InvalidInput(f"{field} must be a flat list of integers", field=field)
    bad = (array < MIN_TIMESTAMP) | (array > MAX_TIMESTAMP)
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidInput(
            f"{field}[{index}] = {int(array[index])} is outside the supported range "
            f"{MIN_TIMESTAMP}..{MAX_TIMESTAMP} (Unix seconds, years 1-9999)",
            field=f"{field}[{index}]",
        )
    return array


@dataclass(frozen=True, slots=True)
class Series:
    """A validated univariate time series, sorted by time.

    Build it with :meth:`Series.from_arrays`, which checks and sorts; the constructor
    itself trusts its arguments (used when data comes back from the store).

    >>> s = Series.from_arrays([30, 10, 20], [3.0, 1.0, 2.0])
    >>> s.timestamps.tolist(), s.values.tolist()
    ([10, 20, 30], [1.0, 2.0, 3.0])
    """

    timestamps: IntArray
    values: FloatArray

    @classmethod
    def from_arrays(
        cls,
        timestamps: Sequence[int] | npt.ArrayLike,
        values: Sequence[float] | npt.ArrayLike,
    ) -> Series:
        """Validate and sort; raise :class:`InvalidInput` naming the field on bad data."""
        value_array = finite_values(values)
        timestamp_array = checked_timestamps(timestamps)
        if timestamp_array.size != value_array.size:
            raise InvalidInput(
                f"timestamps has {timestamp_array.size} items but values has {value_array.size}; "
                "they must be the same length",
                field="timestamps",
            )
        if value_array.size == 0:
            raise InvalidInput("values is empty: a fit needs data points", field="values")
        if timestamp_array.size > 1 and bool(np.any(np.diff(timestamp_array) < 0)):
            order = np.argsort(timestamp_array, kind="stable")
            timestamp_array = timestamp_array[order]
            value_array = value_array[order]
        return cls(timestamps=timestamp_array, values=value_array)

    def __len__(self) -> int:
        return int(self.values.size)

    def tail(self, count: int) -> Series:
        """The most recent ``count`` points (all of them when there are fewer)."""
        if count >= len(self):
            return self
        start = len(self) - max(count, 0)
        return Series(self.timestamps[start:], self.values[start:])
