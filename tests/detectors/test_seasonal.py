from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=200, deadline=None)
@given(
    timestamp=st.integers(min_value=-62_135_596_800, max_value=253_402_300_799),
    value=st.floats(min_value=-1e6, max_value=1e6),
)
def test_score_point_reads_the_same_bin_as_score(timestamp: int, value: float) -> None:
    hours = np.arange(0, 21 * 24 * 4)  # 15-minute data, three weeks
    values = 10 + 5 * np.sin(2 * np.pi * hours / 96) + (hours % 7)
    detector = SeasonalDetector().fit(Series.from_arrays(hours * 900, values))
    assert detector.period_ > 0
    point = detector.score_point(float(timestamp), value)
    scores = detector.score([timestamp], [value])
    assert point.expected == scores.expected[0]
    assert point.score == scores.score[0] and point.anomaly == bool(scores.anomaly[0])


def test_seasonal_handles_irregular_and_missing_timestamps() -> None:
    """Points at random times, two days missing: the profile is learnt by time of day,
    normal points of later random times pass, a 15-sigma spike does not."""
    rng = np.random.default_rng(3)
    times = np.sort(rng.uniform(0, 14 * 86_400, 3000)).astype(np.int64)
    times = times[~((times > 3 * 86_400) & (times < 5 * 86_400))]
    values = 50 + 10 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 1, times.size)
    detector = SeasonalDetector().fit(Series.from_arrays(times, values))
    assert detector.period_ == 86_400
    later = np.sort(rng.uniform(14 * 86_400, 16 * 86_400, 500)).astype(np.int64)
    normal = 50 + 10 * np.sin(2 * np.pi * later / 86_400) + rng.normal(0, 1, later.size)
    assert detector.score(later, normal).anomaly.mean() < 0.01
    normal[100] += 15.0
    assert detector.score(later, normal).anomaly[100]
