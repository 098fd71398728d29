from __future__ import annotations

import pytest

from anomaly_api.errors import InvalidInput
from anomaly_api.timestamps import parse_timestamp, parse_timestamps


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("1691000240", 1691000240),
        (1691000240, 1691000240),
        (1691000240.9, 1691000240),
        (" 1691000240 ", 1691000240),
        ("1691000240.5", 1691000240),
        ("2023-08-02T18:17:20Z", 1691000240),
        ("2023-08-02T20:17:20+02:00", 1691000240),
        ("2023-08-02 18:17:20", 1691000240),
        ("-5", -5),
    ],
)
def test_accepted_forms(raw: int | float | str, seconds: int) -> None:
    assert parse_timestamp(raw) == seconds


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yesterday", "neither Unix seconds nor an ISO-8601"),
        ("nan", "not a finite number"),
        (float("inf"), "not a finite number"),
        (True, "must be Unix seconds"),
        (10**20, "outside the supported range"),
        ("", "neither Unix seconds"),
    ],
)
def test_refused(raw: int | float | str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_timestamp(raw)


def test_vector_form_names_the_index() -> None:
    assert parse_timestamps([1, "2", 3.0]).tolist() == [1, 2, 3]
    with pytest.raises(InvalidInput, match=r"timestamps\[1\]"):
        parse_timestamps([1, "later", 3])
    with pytest.raises(InvalidInput, match=r"timestamps\[2\]"):
        parse_timestamps([1, 2, 10**15])
