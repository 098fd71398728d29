from __future__ import annotations

import numpy as np

from anomaly_api.detectors import SeasonalDetector, Series

HOUR = 3600


def daily(days: int = 14, noise: float = 0.2, seed: int = 0) -> Series:
    hours = np.arange(days * 24)
    rng = np.random.default_rng(seed)
    values = 10 + 5 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, noise, hours.size)
    return Series.from_arrays(hours * HOUR, values)


def test_finds_the_daily_period_and_flags_off_phase_values() -> None:
    detector = SeasonalDetector().fit(daily())
    assert detector.period_ == 86_400
    peak = 14 * 24 * HOUR + 6 * HOUR
    trough = peak + 12 * HOUR
    scores = detector.score([peak, trough, trough], [15.0, 15.0, 5.0])
    assert scores.anomaly.tolist() == [False, True, False]
    assert scores.expected[0] > 14 and scores.expected[1] < 6


def test_noise_without_a_cycle_gets_no_period() -> None:
    rng = np.random.default_rng(3)
    hours = np.arange(14 * 24)
    detector = SeasonalDetector().fit(
        Series.from_arrays(hours * HOUR, rng.normal(0, 1, hours.size))
    )
    assert detector.period_ == 0


def test_short_data_cannot_have_a_weekly_period() -> None:
    detector = SeasonalDetector({"period": "weekly"}).fit(daily(days=10))
    assert detector.period_ == 0


def test_custom_period_in_seconds() -> None:
    minutes = np.arange(600)
    values = np.where((minutes // 5) % 2 == 0, 0.0, 10.0)  # a 10-minute square wave
    detector = SeasonalDetector({"period_seconds": 600}).fit(
        Series.from_arrays(minutes * 60, values)
    )
    assert detector.period_ == 600
    assert detector.score([600 * 60, 605 * 60], [0.0, 0.0]).anomaly.tolist() == [False, True]
