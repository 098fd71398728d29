"""Azure requests read as Azure read them: every check of the contract's table with its
code, and every spelling real clients send accepted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anomaly_api.azure.errors import AzureRequestError
from anomaly_api.azure.request import parse_request
from tests.azure.fixtures import daily_series, monthly_series


def _code(body: Any, operation: str = "entire") -> tuple[str, str]:
    with pytest.raises(AzureRequestError) as refused:
        parse_request(body, operation)
    return refused.value.code, refused.value.message


def _body(**options: Any) -> dict[str, Any]:
    return {"series": daily_series(), "granularity": "daily", **options}


@pytest.mark.parametrize(
    ("body", "operation", "code", "words"),
    [
        ([], "entire", "InvalidJsonFormat", "Empty"),
        ({}, "entire", "InvalidJsonFormat", "Empty"),
        ({"granularity": "daily"}, "entire", "RequiredSeries", "'series' field is required"),
        ({"series": daily_series()}, "changepoint", "RequiredGranularity", "required"),
        (_body(granularity="Daily"), "entire", "InvalidGranularity", "'granularity'"),
        (_body(customInterval=0), "entire", "InvalidCustomInterval", "> 0"),
        (_body(customInterval=1.5), "entire", "InvalidCustomInterval", "> 0"),
        (_body(period=-1), "entire", "InvalidPeriod", ">= 0"),
        (_body(period="7"), "entire", "InvalidPeriod", ">= 0"),
        (_body(maxAnomalyRatio=0), "entire", "InvalidModelArgument", "maxAnomalyRatio"),
        (_body(maxAnomalyRatio=0.5), "entire", "InvalidModelArgument", "maxAnomalyRatio"),
        (_body(sensitivity=101), "entire", "InvalidModelArgument", "sensitivity"),
        (_body(sensitivity=True), "entire", "InvalidModelArgument", "sensitivity"),
        (_body(imputeMode="Fixed"), "entire", "InvalidImputeMode", "imputeMode"),
        (_body(imputeMode="fixed"), "entire", "InvalidImputeFixedValue", "must be a number"),
        (_body(threshold=1.0), "changepoint", "InvalidModelArgument", "'threshold'"),
        (_body(stableTrendWindow=2), "changepoint", "InvalidModelArgument", "stableTrendWindow"),
        (_body(stableTrendWindow=24), "changepoint", "InvalidModelArgument", "half of"),
        ({"series": None}, "entire", "BadArgument", "cannot be empty"),
        ({"series": {"a": 1}}, "entire", "BadArgument", "array/list"),
        ({"series": daily_series()[:11]}, "entire", "InvalidSeries", "at least 12"),
        ({"series": [{"value": 1}] * 8641}, "entire", "InvalidSeries", "more than 8640"),
        (_body(series=[*daily_series()[:-1], {"timestamp": "x", "value": 1}]), "entire",
         "BadArgument", "malformed"),
        (_body(series=[*daily_series()[:-1], {"timestamp": "2018-04-16T00:00:00Z",
         "value": "abc"}]), "entire", "BadArgument", "malformed"),
        (_body(series=[*daily_series()[:-1], {"timestamp": "2018-04-16T00:00:00Z",
         "value": 1e101}]), "entire", "InvalidSeries", "too large"),
        (_body(series=[*daily_series()[:-1], {"timestamp": "2018-04-16T00:00:00Z"}]),
         "entire", "BadArgument", "none values"),
        (_body(series=daily_series()[::-1]), "entire", "InvalidSeries", "ascending"),
        (_body(series=[*daily_series(), daily_series()[-1]]), "entire", "InvalidSeries",
         "duplicated"),
        (_body(series=[*daily_series()[:-1], {"timestamp": "2018-04-16T00:00:01Z",
         "value": 1}]), "entire", "InvalidSeries", "'timestamp' at index 46 is invalid"),
        (_body(period=24), "entire", "InvalidModelArgument", "more than 2 periods"),
    ],
)  # fmt: skip
def test_each_check_answers_its_code(body: Any, operation: str, code: str, words: str) -> None:
    found, message = _code(body, operation)
    assert found == code and words in message, message


def test_what_real_clients_send_is_accepted() -> None:
    # Explicit nulls are absent options; numbers may come as strings (the SDK's own test).
    request = parse_request(
        _body(series=daily_series(as_strings=True), sensitivity=None, period=None), "entire"
    )
    assert request.period is None and request.sensitivity == 99
    assert request.values[0] == 32858923
    # Integral floats for integer options; every timestamp spelling seen in the wild.
    series = monthly_series()
    series[1]["timestamp"] = "1972-02-01T00:00:00.000Z"  # msrest
    series[2]["timestamp"] = "1972-03-01T00:00:00.0000000Z"  # .NET
    series[3]["timestamp"] = "1972-04-01T01:00:00+01:00"  # an offset
    series[4]["timestamp"] = "1972-05-01T00:00:00"  # no offset: UTC
    request = parse_request(
        {"series": series, "granularity": "monthly", "sensitivity": 95.0, "customInterval": 1.0},
        "entire",
    )
    assert request.sensitivity == 95 and request.interval == 1
    assert request.stamps_us is not None
    assert np.all(np.diff(request.stamps_us) > 0)
    # Granularity none: no timestamps needed; unknown fields ignored.
    points = [{"value": v} for v in range(20)]
    request = parse_request({"series": points, "boundaryVersion": "V1"}, "last")
    assert request.stamps_us is None and request.granularity == "none"


def test_change_point_defaults_follow_the_granularity() -> None:
    request = parse_request({"series": daily_series(), "granularity": "daily"}, "changepoint")
    assert (request.window, request.threshold) == (5, 0.9)
    hourly = parse_request(
        {"series": [{"value": v} for v in range(100)], "granularity": "none"}, "changepoint"
    )
    assert hourly.window == 49  # 100 by default, at most under half the points


def test_the_common_timestamp_form_is_read_exactly_as_any_other() -> None:
    from datetime import UTC, datetime, timedelta

    from anomaly_api.azure.request import _microseconds, _plain_stamps

    rng = np.random.default_rng(11)
    moments = [
        datetime(1, 1, 1, tzinfo=UTC) + timedelta(seconds=int(s))
        for s in rng.integers(0, 315_537_897_599, 2000)
    ]
    texts = [moment.isoformat().replace("+00:00", "Z") for moment in moments]
    texts[:4] = ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59Z", "1900-03-01T00:00:00Z",
                 "9999-12-31T23:59:59Z"]  # fmt: skip
    fast = _plain_stamps(texts)
    assert fast is not None
    assert fast.tolist() == [_microseconds(text) for text in texts]
    # Anything else is left to the general reader, which names what is wrong.
    for odd in ("2023-02-29T00:00:00Z", "2018-03-01T24:00:00Z", "2018-03-01 00:00:00Z"):
        assert _plain_stamps([odd]) is None
    assert _plain_stamps(["2018-03-01T00:00:00.000Z"]) is None
    _code({"series": [{"timestamp": "2023-02-29T00:00:00Z", "value": 1}] * 12,
           "granularity": "daily"})  # fmt: skip
