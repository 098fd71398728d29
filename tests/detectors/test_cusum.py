"""``cusum``: small level shifts found by accumulating evidence; an honest, narrowing band."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, CusumDetector, Series


def shifted(seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = 60 * np.arange(3000)
    values = 100 + rng.normal(0, 1, times.size)
    values[2500:] += shift
    return times, values


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shift_of_one_and_a_half_sigmas_is_found_where_bands_see_nothing(seed: int) -> None:
    times, values = shifted(seed, 1.5)
    train = Series.from_arrays(times[:2000], values[:2000])
    scores = CusumDetector().fit(train).score(times[2000:], values[2000:])
    flagged = np.flatnonzero(scores.anomaly) + 2000
    after = flagged[flagged >= 2500]
    assert after.size and after[0] < 2520  # within 20 points of the shift
    found = float(np.mean(scores.anomaly[500:]))
    assert found > 0.1  # and it keeps saying so
    for name in ("zscore", "robust", "seasonal"):
        band = DETECTORS[name]().fit(train).score(times[2500:], values[2500:])
        # A band judges each point alone: only the odd noisy point of the shift is out.
        assert band.anomaly.mean() < min(0.06, found / 2), name


def test_no_change_rarely_alarms() -> None:
    times, values = shifted(4, 0.0)
    detector = CusumDetector().fit(Series.from_arrays(times[:2000], values[:2000]))
    assert detector.score(times[2000:], values[2000:]).anomaly.mean() < 0.01


def test_the_band_narrows_on_the_side_where_evidence_builds() -> None:
    times, values = shifted(5, 0.0)
    detector = CusumDetector().fit(Series.from_arrays(times[:2000], values[:2000]))
    context = detector.initial_context()
    at_rest = detector.observe_one(context, float(times[2000]), 100.0)
    width = (5.0 + 0.5) * detector.unit_
    assert at_rest.upper - at_rest.expected == pytest.approx(width)
    assert at_rest.expected - at_rest.lower == pytest.approx(width)
    for step in range(1, 4):  # three points 1.5 sigmas high: evidence of a shift up
        detector.observe_one(context, float(times[2000 + step]), 100.0 + 1.5 * detector.unit_)
    building = detector.peek_one(context, float(times[2004]), 100.0)
    assert building.upper - building.expected < width
    assert building.expected - building.lower == pytest.approx(width)
