"""``trend``: slow drifts found by the slope of the recent points, against the training
windows' slopes; a daily cycle is no trend; the band is exact."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, Series, TrendDetector
from anomaly_api.errors import InvalidInput

TIMES = 300 * np.arange(3000)


def leaking(seed: int, rate: float = 0.05) -> np.ndarray:
    """Noise of sigma 1 with a leak of ``rate`` sigmas per point from point 2500."""
    values = 50 + np.random.default_rng(seed).normal(0, 1, TIMES.size)
    values[2500:] += rate * np.arange(500)
    return values


def training(values: np.ndarray) -> Series:
    return Series.from_arrays(TIMES[:2000], values[:2000])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_leak_is_found_while_level_bands_see_only_the_odd_point(seed: int) -> None:
    values = leaking(seed)
    scores = TrendDetector().fit(training(values)).score(TIMES[2000:], values[2000:])
    incident = scores.incident
    assert incident is not None
    alerts = np.flatnonzero(incident == 1) + 2000
    assert alerts.size and 2500 <= alerts[alerts >= 2500][0] < 2540  # within 40 points
    assert scores.anomaly[:450].sum() < 5  # under 1% of the noise before it
    early = slice(2500, 2560)  # the leak's first 60 points: 3 sigmas at most
    found = int(scores.anomaly[500:560].sum())
    assert found >= 20
    for name in ("robust", "seasonal"):
        band = DETECTORS[name]().fit(training(values)).score(TIMES[early], values[early])
        assert int(band.anomaly.sum()) < found / 4, name


def test_a_daily_cycle_is_no_trend() -> None:
    times = 300 * np.arange(6000)
    noise = np.random.default_rng(9).normal(0, 1, times.size)
    values = 100 + 20 * np.sin(2 * np.pi * times / 86_400) + noise
    detector = TrendDetector().fit(Series.from_arrays(times[:3000], values[:3000]))
    assert detector.seasonal_.period_ == 86_400
    # Its steepest hour climbs 5 sigmas: without the profile every afternoon would alarm.
    assert detector.score(times[3000:], values[3000:]).anomaly.mean() < 0.01


def test_the_band_is_the_values_that_keep_the_slope_in_bounds() -> None:
    values = leaking(4)
    detector = TrendDetector().fit(training(values))
    context = detector.initial_context()
    stamp = float(TIMES[2000])
    point = detector.peek_one(context, stamp, 50.0)
    assert point.lower < point.expected < point.upper
    edge = detector.peek_one(context, stamp, point.upper)
    assert edge.score == pytest.approx(0.5, abs=1e-9)
    beyond = detector.peek_one(context, stamp, point.upper + 1e-6)
    assert beyond.anomaly and beyond.side == 1
    below = detector.peek_one(context, stamp, point.lower - 1e-6)
    assert below.anomaly and below.side == -1


def test_the_direction_chooses_which_slope_counts() -> None:
    rising = leaking(5)
    falling = 100 - rising
    for values, watched, ignored in ((rising, "upper", "lower"), (falling, "lower", "upper")):
        for direction, expect in ((watched, True), (ignored, False)):
            detector = TrendDetector({"direction": direction}).fit(training(values))
            flagged = detector.score(TIMES[2500:], values[2500:]).anomaly.any()
            assert bool(flagged) is expect, (direction, expect)


def test_a_short_training_series_shrinks_the_window_to_half_of_it() -> None:
    values = leaking(6)[:30]
    detector = TrendDetector({"window": 200}).fit(Series.from_arrays(TIMES[:30], values))
    assert detector.window_ == 15
    assert len(detector.initial_context().residuals) == 14


def test_a_context_survives_its_json_and_rejects_garbage() -> None:
    values = leaking(7)
    detector = TrendDetector().fit(training(values))
    context = detector.context_after(TIMES[2000:2100], values[2000:2100])
    assert detector.load_context(context.dump()).dump() == context.dump()
    assert detector.load_context({"residuals": ["x"]}).dump() == {"residuals": []}
    assert detector.load_context({"residuals": [float("nan")]}).dump() == {"residuals": []}


@pytest.mark.parametrize("step", [0.1, 1.0, 3.7])
def test_a_perfectly_straight_ramp_raises_no_alarm(step: float) -> None:
    values = 1e6 + step * np.arange(TIMES.size)
    detector = TrendDetector().fit(training(values))
    assert not detector.score(TIMES[2000:], values[2000:]).anomaly.any()


def test_the_running_sums_stay_the_exact_slope() -> None:
    """Each point costs the same whatever the window: the others' part of the slope
    comes from running sums, which must agree with a direct fit of the window."""
    values = leaking(10)
    detector = TrendDetector({"window": 500}).fit(training(values))
    context = detector.initial_context()
    for index in range(2000, 2600):
        detector.observe_one(context, float(TIMES[index]), float(values[index]))
    residuals = np.array(context.residuals)
    profile = detector.seasonal_.baseline_at(float(TIMES[2600]))
    point = detector.peek_one(context, float(TIMES[2600]), float(values[2600]))
    window = np.append(residuals, values[2600] - profile)
    direct = np.polyfit(np.arange(window.size), window, 1)[0]
    slope_at_expected = np.polyfit(
        np.arange(window.size), np.append(residuals, point.expected - profile), 1
    )[0]
    assert slope_at_expected == pytest.approx(detector.center_, abs=1e-9)
    assert direct != pytest.approx(detector.center_)  # the leak, seen by the direct fit too
    restored = detector.load_context(context.dump())
    assert detector.peek_one(restored, float(TIMES[2600]), 55.0) == detector.peek_one(
        context, float(TIMES[2600]), 55.0
    )


def test_values_near_the_float_limit_are_flagged_without_nan() -> None:
    """A slope over values near the largest float overflows: such points are flagged
    (they were not in training) with finite edges, and the context stays restorable."""
    values = leaking(11)
    detector = TrendDetector().fit(training(values))
    context = detector.initial_context()
    stamps = TIMES[2000:2060].astype(float)
    points = [detector.observe_one(context, float(t), 1.7e308) for t in stamps]
    assert all(p.anomaly and np.isfinite([p.lower, p.upper, p.score]).all() for p in points)
    restored = detector.load_context(context.dump())
    assert detector.peek_one(restored, 1e12, 50.0) == detector.peek_one(context, 1e12, 50.0)
    with pytest.raises(InvalidInput, match="overflow"):
        TrendDetector({"window": 2000}).fit(Series.from_arrays(TIMES, values * 1e305))
