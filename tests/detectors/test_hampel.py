from __future__ import annotations

import numpy as np

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
