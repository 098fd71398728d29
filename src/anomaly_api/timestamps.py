"""Reading timestamps as clients send them: Unix seconds as numbers or text, or ISO-8601.

The contract sends the predict timestamp as a string (``"1691000240"``) and fit
timestamps as integers; numbers and ISO-8601 strings (``"2023-08-02T18:17:20Z"``;
without an offset they are taken as UTC) are accepted everywhere as well. Fractions of
a second are dropped: models work in whole seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from anomaly_api.detectors.series import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    IntArray,
    checked_timestamps,
)
from anomaly_api.errors import InvalidInput


def parse_timestamp(raw: int | float | str, field: str = "timestamp") -> int:
    """Unix seconds from a number, a numeric string or an ISO-8601 string.

    >>> parse_timestamp("1691000240"), parse_timestamp(1691000240.7)
    (1691000240, 1691000240)
    >>> parse_timestamp("2023-08-02T18:17:20Z")
    1691000240
    """
    if isinstance(raw, bool):
        raise InvalidInput(f"{field} must be Unix seconds or an ISO-8601 string", field=field)
    if isinstance(raw, int):
        seconds = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise InvalidInput(f"{field} is not a finite number", field=field)
        seconds = math.floor(raw)
    else:
        seconds = _parse_text(raw.strip(), field)
    if not MIN_TIMESTAMP <= seconds <= MAX_TIMESTAMP:
        raise InvalidInput(
            f"{field} = {seconds} is outside the supported range "
            f"{MIN_TIMESTAMP}..{MAX_TIMESTAMP} (Unix seconds, years 1-9999)",
            field=field,
        )
    return seconds


def parse_timestamps(raw: Sequence[int | float | str], field: str = "timestamps") -> IntArray:
    """Vector form of :func:`parse_timestamp`, fast when every item is already an int."""
    if all(type(item) is int for item in raw):
        try:  # fromiter is faster than asarray on a list of a million ints
            array = np.fromiter(raw, dtype=np.int64, count=len(raw))
        except OverflowError:
            array = None  # beyond 64 bits: let the check below name the item
        return checked_timestamps(raw if array is None else array, field=field)
    return np.fromiter(
        (parse_timestamp(item, f"{field}[{index}]") for index, item in enumerate(raw)),
        dtype=np.int64,
        count=len(raw),
    )


def _parse_text(text: str, field: str) -> int:
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise InvalidInput(f"{field} is not a finite number", field=field)
        if text.lstrip("+-").isdigit() and len(text) <= 20:  # int() refuses 4,300+ digits
            return int(text)
        return math.floor(number)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{field} {text!r} is neither Unix seconds nor an ISO-8601 date-time", field=field
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())
