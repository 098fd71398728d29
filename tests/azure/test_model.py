"""Entire, last-point and change-point answers on Microsoft's examples and on series with
gaps: the contract's invariants, and model figures checked against Azure's where they
should agree."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anomaly_api.azure import model
from anomaly_api.azure.request import parse_request
from tests.azure.fixtures import F7_ANOMALIES, daily_series, monthly_series


def _entire(**body: Any) -> dict[str, Any]:
    return model.entire(parse_request(body, "entire"))


def _invariants(answer: dict[str, Any], values: list[float]) -> None:
    value = np.asarray(values, dtype=float)
    expected = answer["expectedValues"]
    assert (
        answer["isAnomaly"].tolist()
        == (answer["isPositiveAnomaly"] | answer["isNegativeAnomaly"]).tolist()
    )
    assert np.all(value[answer["isPositiveAnomaly"]] > expected[answer["isPositiveAnomaly"]])
    assert np.all(value[answer["isNegativeAnomaly"]] < expected[answer["isNegativeAnomaly"]])
    assert np.all((answer["severity"] >= 0) & (answer["severity"] <= 1))
    assert np.all(answer["severity"][~answer["isAnomaly"]] == 0)
    for name in ("expectedValues", "upperMargins", "lowerMargins", "severity"):
        assert answer[name].size == value.size and np.all(np.isfinite(answer[name]))


def test_the_monthly_example_as_azure_answered_it() -> None:
    # F1: Azure's v1.1 spec example flags only index 25 (1030 against ~798 expected).
    series = monthly_series()
    answer = _entire(series=series, granularity="monthly", maxAnomalyRatio=0.25, sensitivity=95)
    assert answer["period"] == 12
    assert np.flatnonzero(answer["isAnomaly"]).tolist() == [25]
    assert answer["isPositiveAnomaly"][25]
    assert answer["expectedValues"][0] == pytest.approx(827.79, rel=0.05)
    assert answer["expectedValues"][47] == pytest.approx(809.23, rel=0.05)
    _invariants(answer, [point["value"] for point in series])


def test_the_last_point_examples_as_azure_answered_them() -> None:
    # F2 (v1.1) and F7's latest-point answer (v1.0): period, suggested window, not anomalous.
    body = {"series": monthly_series(), "granularity": "monthly", "sensitivity": 95}
    answer = model.last(
        parse_request({**body, "imputeMode": "fixed", "imputeFixedValue": 800}, "last")
    )
    assert (answer["period"], answer["suggestedWindow"], answer["isAnomaly"]) == (12, 49, False)
    assert answer["expectedValue"] == pytest.approx(809.23, rel=0.05)
    assert answer["severity"] == 0.0
    daily = model.last(parse_request({"series": daily_series(), "granularity": "daily"}, "last"))
    assert (daily["period"], daily["suggestedWindow"], daily["isAnomaly"]) == (7, 29, False)
    assert daily["expectedValue"] == pytest.approx(35344244.4, rel=0.05)


def test_the_daily_example_flags_a_subset_of_what_azure_flagged() -> None:
    series = daily_series()
    answer = _entire(series=series, granularity="daily")
    assert answer["period"] == 7
    flagged = np.flatnonzero(answer["isAnomaly"]).tolist()
    assert 3 <= len(flagged) <= 0.25 * len(series)
    assert len(set(flagged) & set(F7_ANOMALIES)) >= len(flagged) - 1
    _invariants(answer, [point["value"] for point in series])


def test_sensitivity_narrows_the_band_and_the_ratio_caps_the_flags() -> None:
    series = daily_series()
    widths = [
        _entire(series=series, granularity="daily", sensitivity=s)["upperMargins"][0]
        for s in (50, 90, 99)
    ]
    assert widths[0] > widths[1] > widths[2] > 0
    everything = _entire(series=series, granularity="daily", sensitivity=100, maxAnomalyRatio=0.1)
    assert int(everything["isAnomaly"].sum()) == 4  # floor(0.1 x 47)


def test_gaps_are_filled_and_the_answer_has_one_entry_per_point() -> None:
    series = monthly_series()
    holey = [point for index, point in enumerate(series) if index % 10 != 5]
    for mode in ("auto", "previous", "linear", "zero", "notFill"):
        answer = _entire(series=holey, granularity="monthly", imputeMode=mode, period=12)
        assert answer["expectedValues"].size == len(holey)
        _invariants(answer, [point["value"] for point in holey])
    fixed = _entire(series=holey, granularity="monthly", imputeMode="fixed", imputeFixedValue=850)
    assert fixed["expectedValues"].size == len(holey)


def test_a_custom_interval_sets_the_grid() -> None:
    points = [
        {"timestamp": f"2024-01-01T{(5 * i) // 60:02d}:{(5 * i) % 60:02d}:00Z", "value": i % 7}
        for i in range(200)
    ]
    answer = _entire(series=points, granularity="minutely", customInterval=5)
    assert answer["period"] == 7
    assert not answer["isAnomaly"].any()


def test_change_points_of_a_level_shift() -> None:
    rng = np.random.default_rng(5)
    values = np.r_[rng.normal(100, 2, 60), rng.normal(130, 2, 60)]
    series = [
        {"timestamp": f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}T00:00:00Z", "value": v}
        for i, v in enumerate(values)
    ]
    answer = model.changepoint(
        parse_request({"series": series, "granularity": "none", "stableTrendWindow": 10,
                       "threshold": 0.99, "period": 0}, "changepoint")
    )  # fmt: skip
    assert np.flatnonzero(answer["isChangePoint"]).tolist() == [60]
    assert answer["confidenceScores"].size == 120 and answer["period"] == 0
    assert np.all((answer["confidenceScores"] >= 0) & (answer["confidenceScores"] <= 1))
