"""Reading an Azure univariate request, checked as Azure checked it.

The checks, their codes and their messages follow Microsoft's open-source release of the
univariate engine (``../shared/AZURE_COMPAT.md`` section 3.3), in its order: the body and
the options first, then the series. Only the first fault is reported. What real clients
send is accepted: ``null`` for an absent option, numbers as strings (``"value": "32858923"``),
integral floats for integer options, ISO-8601 timestamps with ``Z`` or an offset and 0 to 7
fractional digits, and no timestamps at all when the granularity is ``none``. Unknown
fields are ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import orjson

from anomaly_api.azure.errors import AzureRequestError
from anomaly_api.azure.grid import GRANULARITIES, IMPUTE_MODES, grid_slots
from anomaly_api.detectors.series import FloatArray, IntArray

MIN_POINTS = 12
MAX_POINTS = 8640
MAX_MAGNITUDE = 1e100
DEFAULT_MAX_RATIO = 0.25
DEFAULT_SENSITIVITY = 99
CHANGEPOINT_THRESHOLD = {"hourly": 0.91}
"""Azure's default change-point threshold per granularity (0.9 for the others)."""
CHANGEPOINT_WINDOW = {
    "yearly": 3,
    "monthly": 6,
    "weekly": 3,
    "daily": 5,
    "hourly": 24,
    "minutely": 72,
    "secondly": 72,
    "microsecond": 100,
    "none": 100,
}
"""Azure's default ``stableTrendWindow`` per granularity."""
_MALFORMED = "'timestamp' or 'value' is malformed in 'series' Field."


class _FastPoint(msgspec.Struct, gc=False):
    value: float
    timestamp: str | None = None


class _FastBody(msgspec.Struct):
    """The common body: numbers for values, strings (or nothing) for timestamps."""

    series: list[_FastPoint]
    granularity: Any = msgspec.UNSET
    customInterval: Any = msgspec.UNSET  # noqa: N815 (Azure's names)
    period: Any = msgspec.UNSET
    maxAnomalyRatio: Any = msgspec.UNSET  # noqa: N815
    sensitivity: Any = msgspec.UNSET
    imputeMode: Any = msgspec.UNSET  # noqa: N815
    imputeFixedValue: Any = msgspec.UNSET  # noqa: N815
    stableTrendWindow: Any = msgspec.UNSET  # noqa: N815
    threshold: Any = msgspec.UNSET


_FAST = msgspec.json.Decoder(_FastBody)
_OPTIONS = [name for name in _FastBody.__struct_fields__ if name != "series"]


@dataclass(frozen=True, slots=True)
class AzureRequest:
    """A checked request: the points and what the options ask for."""

    values: FloatArray
    stamps_us: IntArray | None
    """Unix microseconds, ascending; None with granularity ``none``."""
    slots: IntArray | None
    """Each point's slot on the granularity's grid (None with granularity ``none``)."""
    granularity: str
    interval: int
    period: int | None
    """None: detect it."""
    max_ratio: float
    sensitivity: float
    impute: str
    impute_fixed: float | None
    window: int
    """``stableTrendWindow`` (change points)."""
    threshold: float
    """Change-point confidence threshold."""


def _fail(code: str, message: str) -> AzureRequestError:
    return AzureRequestError(code, message)


def _integer(value: Any) -> int | None:
    """An integer option: an int or an integral float (not a boolean); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_json(raw: bytes, operation: str) -> AzureRequest:
    """A request body as ``operation`` reads it. The common case (every value a JSON
    number, every timestamp a string) is decoded by msgspec straight into typed points;
    anything else is parsed as JSON and checked item by item, which names the fault."""
    try:
        fast = _FAST.decode(raw)
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        return parse_request(read_json(raw), operation)
    options = {
        name: getattr(fast, name) for name in _OPTIONS if getattr(fast, name) is not msgspec.UNSET
    }
    points = fast.series
    values = np.array([point.value for point in points], dtype=np.float64)
    stamps = [point.timestamp for point in points]
    return parse_request({**options, "series": points}, operation, (values, stamps))


def read_json(raw: bytes) -> Any:
    """A body as JSON (``NaN`` and ``Infinity`` tokens too, which the checks then name)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        if not raw.strip():
            raise _fail("InvalidJsonFormat", "Invalid Json Format, input data is Empty.") from None
        raise _fail(
            "InvalidJsonFormat", "Invalid Json Format, the body is not valid JSON."
        ) from None


def parse_request(
    body: Any,
    operation: str,
    points: tuple[FloatArray, list[str | None]] | None = None,
) -> AzureRequest:
    """``body`` (parsed JSON) as ``operation`` (``entire``, ``last``, ``changepoint``)
    reads it, or the :class:`AzureRequestError` Azure would have answered. ``points``:
    the values and timestamps of ``body["series"]``, when already decoded."""
    if not isinstance(body, dict) or not body:
        raise _fail("InvalidJsonFormat", "Invalid Json Format, input data is Empty.")
    options = {key: value for key, value in body.items() if value is not None}
    if "series" not in body:
        raise _fail("RequiredSeries", "The 'series' field is required in request.")
    change = operation == "changepoint"
    if change and "granularity" not in options:
        raise _fail("RequiredGranularity", "The 'granularity' field is required in request.")
    granularity = options.get("granularity", "none")
    if granularity not in GRANULARITIES:
        raise _fail(
            "InvalidGranularity",
            f"The 'granularity' field can only be one of the following: {list(GRANULARITIES)}.",
        )
    interval = _integer(options.get("customInterval", 1))
    if interval is None or interval <= 0:
        raise _fail("InvalidCustomInterval", "The 'customInterval' field must be an integer > 0.")
    period = None
    if "period" in options:
        period = _integer(options["period"])
        if period is None or period < 0:
            raise _fail("InvalidPeriod", "The 'period' field must be an integer >= 0.")
    max_ratio = _number(options.get("maxAnomalyRatio", DEFAULT_MAX_RATIO))
    if max_ratio is None or not 0 < max_ratio <= 0.49:
        raise _fail(
            "InvalidModelArgument",
            "The 'maxAnomalyRatio' field must be less than 50% of the series points "
            "(0 < maxAnomalyRatio < 0.5).",
        )
    sensitivity = _integer(options.get("sensitivity", DEFAULT_SENSITIVITY))
    if sensitivity is None or not 0 <= sensitivity <= 100:
        raise _fail(
            "InvalidModelArgument", "The 'sensitivity' field must be an integer between 0 and 99."
        )
    impute = options.get("imputeMode", "auto")
    if impute not in IMPUTE_MODES:
        raise _fail(
            "InvalidImputeMode",
            "The 'imputeMode' field is required and should be one of the following: "
            f"{list(IMPUTE_MODES)}.",
        )
    impute_fixed = _number(options.get("imputeFixedValue"))
    if impute == "fixed" and (impute_fixed is None or not math.isfinite(impute_fixed)):
        raise _fail("InvalidImputeFixedValue", "The 'imputeFixedValue' field must be a number.")
    threshold = CHANGEPOINT_THRESHOLD.get(granularity, 0.9)
    if change and "threshold" in options:
        given = _number(options["threshold"])
        if given is None or not 0.01 <= given <= 0.99:
            raise _fail(
                "InvalidModelArgument",
                "The 'threshold' field must be an float between 0.01 and 0.99.",
            )
        threshold = given
    series = body["series"]
    if series is None:
        raise _fail("BadArgument", "The 'series' field cannot be empty.")
    if not isinstance(series, list):
        raise _fail("BadArgument", "The 'series' field must be array/list type.")
    if len(series) < MIN_POINTS:
        raise _fail("InvalidSeries", f"The 'series' field must have at least {MIN_POINTS} points.")
    if len(series) > MAX_POINTS:
        raise _fail(
            "InvalidSeries", f"The 'series' field cannot have more than {MAX_POINTS} points."
        )
    window = CHANGEPOINT_WINDOW[granularity]
    if change and "stableTrendWindow" in options:
        given_window = _integer(options["stableTrendWindow"])
        if given_window is None or not 3 <= given_window < len(series) / 2:
            raise _fail(
                "InvalidModelArgument",
                "The 'stableTrendWindow' field must be an integer >= 3 and < half of "
                "series' length.",
            )
        window = given_window
    timed = granularity != "none"
    if points is None:
        values, stamps = _points(series, timed)
    else:
        values, stamps = points[0], (_stamps(points[1]) if timed else None)
        _check(values, stamps)
    slots = None if stamps is None else grid_slots(stamps, granularity, interval)
    if period is not None and period > 0 and values.size < 2 * period + 1:
        raise _fail(
            "InvalidModelArgument", "The 'series' field must have more than 2 periods points"
        )
    return AzureRequest(
        values=values,
        stamps_us=stamps,
        slots=slots,
        granularity=granularity,
        interval=interval,
        period=period,
        max_ratio=max_ratio,
        sensitivity=float(sensitivity),
        impute=impute,
        impute_fixed=impute_fixed,
        window=min(window, max(3, (len(series) - 1) // 2)),
        threshold=threshold,
    )


def _points(series: list[Any], timed: bool) -> tuple[FloatArray, IntArray | None]:
    """The values (and, when ``timed``, the timestamps in Unix microseconds) of the
    points, checked in Azure's order."""
    values = np.empty(len(series))
    texts: list[Any] = []
    for index, point in enumerate(series):
        if not isinstance(point, dict):
            raise _fail("BadArgument", _MALFORMED)
        value = point.get("value")
        if value is None:
            values[index] = math.nan
        elif isinstance(value, bool):
            raise _fail("BadArgument", _MALFORMED)
        elif isinstance(value, int | float):
            values[index] = value if abs(value) <= MAX_MAGNITUDE else math.inf
        elif isinstance(value, str):
            try:
                values[index] = float(value)
            except ValueError:
                raise _fail("BadArgument", _MALFORMED) from None
        else:
            raise _fail("BadArgument", _MALFORMED)
        if timed:
            texts.append(point.get("timestamp"))
    stamps = _stamps(texts) if timed else None
    _check(values, stamps)
    return values, stamps


def _check(values: FloatArray, stamps: IntArray | None) -> None:
    """Azure's checks of the values (magnitude, none) and timestamps (order, repeats)."""
    if np.any(np.abs(values) > MAX_MAGNITUDE):
        raise _fail(
            "InvalidSeries", "The magnitude of data in 'value' in 'series' filed is too large."
        )
    if np.any(np.isnan(values)):
        raise _fail("BadArgument", "The 'series' field cannot have none values.")
    if stamps is not None:
        steps = np.diff(stamps)
        if np.any(steps < 0):
            raise _fail(
                "InvalidSeries",
                "The 'series' field must be sorted by timestamp in ascending order.",
            )
        if np.any(steps == 0):
            raise _fail("InvalidSeries", "The 'series' field cannot have duplicated timestamp.")


_PLAIN = np.frombuffer(b"0000-00-00T00:00:00Z", dtype=np.uint8)
_DIGITS = np.array([c not in b"-T:Z" for c in b"0000-00-00T00:00:00Z"])
_DAYS_BEFORE_MONTH = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _stamps(texts: list[Any]) -> IntArray:
    """Unix microseconds of ISO-8601 timestamps: the common ``2018-03-01T00:00:00Z`` form
    read column-wise by numpy, any other by :func:`_microseconds`."""
    fast = _plain_stamps(texts)
    if fast is not None:
        return fast
    return np.fromiter((_microseconds(text) for text in texts), dtype=np.int64, count=len(texts))


def _plain_stamps(texts: list[Any]) -> IntArray | None:
    """Every timestamp in the form ``YYYY-MM-DDTHH:MM:SSZ``, valid; None otherwise."""
    try:
        blob = "".join(texts).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return None
    if len(blob) != 20 * len(texts):
        return None
    table = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 20)
    digits = table[:, _DIGITS].astype(np.int64) - 48
    if np.any(table[:, ~_DIGITS] != _PLAIN[~_DIGITS]) or np.any((digits < 0) | (digits > 9)):
        return None
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 4] * 10 + digits[:, 5]
    day = digits[:, 6] * 10 + digits[:, 7]
    hour, minute, second = (digits[:, 8 + 2 * i] * 10 + digits[:, 9 + 2 * i] for i in range(3))
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    if np.any((month < 1) | (month > 12) | (year < 1)):
        return None
    longest = _DAYS_IN_MONTH[month] + ((month == 2) & leap)
    if np.any((day < 1) | (day > longest) | (hour > 23) | (minute > 59) | (second > 59)):
        return None
    before = year - 1
    days = (
        before * 365 + before // 4 - before // 100 + before // 400
        + _DAYS_BEFORE_MONTH[month] + ((month > 2) & leap) + day - 1
        - 719_162  # days from 0001-01-01 to 1970-01-01
    )  # fmt: skip
    seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
    return np.asarray(seconds * 1_000_000, dtype=np.int64)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _microseconds(text: Any) -> int:
    """Unix microseconds of an ISO-8601 timestamp (no offset: UTC; a seventh fractional
    digit, as .NET writes, is dropped)."""
    if not isinstance(text, str):
        raise _fail("BadArgument", _MALFORMED)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail("BadArgument", _MALFORMED) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
