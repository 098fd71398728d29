from __future__ import annotations

import pytest

from anomaly_api.errors import InvalidSeriesId
from anomaly_api.series_ids import check_series_id


@pytest.mark.parametrize(
    "series_id", ["sensor_1", "eu-west-1:cpu", "température.salon", "温度", "a@b~c", "x" * 256]
)
def test_allowed(series_id: str) -> None:
    assert check_series_id(series_id) == series_id


@pytest.mark.parametrize(
    ("series_id", "message"),
    [
        ("", "must not be empty"),
        ("x" * 257, "257 characters long; the limit is 256"),
        ("x" * 10_000, "10000 characters long"),
        ("a/b", "contains '/' at position 1"),
        ("a b", "contains ' '"),
        ("a\x00b", "contains '\\\\x00'"),
        ("..", "dots only"),
        ("a\nb", "contains '\\\\n'"),
    ],
)
def test_refused_with_the_reason(series_id: str, message: str) -> None:
    with pytest.raises(InvalidSeriesId, match=message):
        check_series_id(series_id)
