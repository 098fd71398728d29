from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import HampelDetector, Series
from anomaly_api.detectors.hampel import rolling_median_forecast


def test_forecast_uses_only_the_past() -> None:
    forecast = rolling_median_forecast(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0]), 3)
    assert forecast.tolist() == [2.0, 3.0]


def test_a_spike_raises_one_alarm_and_a_shift_a_short_burst() -> None:
    rng = np.random.default_rng(0)
    training = Series.from_arrays(np.arange(500), rng.normal(0, 1, 500))
    detector = HampelDetector({"window": 6}).fit(training)
    spike = rng.normal(0, 1, 50)
    spike[10] = 40.0
    assert int(detector.score(np.arange(50), spike).anomaly.sum()) == 1
    shifted = np.concatenate([rng.normal(0, 1, 10), rng.normal(30, 1, 40)])
    flagged = np.flatnonzero(detector.score(np.arange(50), shifted).anomaly)
    assert flagged[0] == 10
    assert flagged.size <= 4  # the median catches up within half a window


def test_slow_drift_is_normal() -> None:
    drift = np.linspace(0, 100, 1000) + np.random.default_rng(2).normal(0, 1, 1000)
    detector = HampelDetector().fit(Series.from_arrays(np.arange(600), drift[:600]))
    assert not detector.score(np.arange(600, 1000), drift[600:]).anomaly.any()


@pytest.mark.parametrize("window", [1, 2, 3, 8, 25])
@pytest.mark.parametrize("history_size", [0, 1, 5, 30])
def test_the_moving_median_is_the_median_of_each_window_before(
    window: int, history_size: int
) -> None:
    from numpy.lib.stride_tricks import sliding_window_view

    from anomaly_api.detectors.hampel import rolling_median_forecast

    rng = np.random.default_rng(window * 100 + history_size)
    history = rng.normal(size=history_size).round(1)
    values = rng.normal(size=200).round(1)  # ties: medians of equal values
    if history_size == 0:
        history = values[:1]
    joined = np.concatenate([history[-window:], values])
    lead = joined.size - values.size
    if lead < window:
        joined = np.concatenate([np.full(window - lead, joined[0]), joined])
    naive = np.median(sliding_window_view(joined, window)[: values.size], axis=1)
    np.testing.assert_array_equal(rolling_median_forecast(history, values, window), naive)


def test_a_wide_window_costs_memory_in_points_not_points_times_window() -> None:
    """hampel with window 1,000 on 200,000 points used to build a 200,000 x 1,000 array
    (1.6 GB); the moving median needs a few arrays of the points."""
    import tracemalloc

    values = np.random.default_rng(5).normal(size=200_000)
    times = 60 * np.arange(values.size)
    tracemalloc.start()
    try:
        detector = HampelDetector({"window": 1000}).fit(Series.from_arrays(times, values))
        detector.score(times, values)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 1024 * 1024, peak
