"""``spread``: the series moves more or less than in training (variance shifts, denser
spikes, a stuck sensor), judged on its steps, whatever its level."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, Series, SpreadDetector
from anomaly_api.errors import InvalidInput

TIMES = 300 * np.arange(3000)


def noise(seed: int) -> np.ndarray:
    return 100 + np.random.default_rng(seed).normal(0, 1, TIMES.size)


def fitted(values: np.ndarray, **params: object) -> SpreadDetector:
    return SpreadDetector(params).fit(Series.from_arrays(TIMES[:2000], values[:2000]))


def flagged_after(values: np.ndarray, start: int, **params: object) -> np.ndarray:
    scores = fitted(values, **params).score(TIMES[2000:], values[2000:])
    flags = np.flatnonzero(scores.anomaly) + 2000
    return flags[flags >= start]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_noise_doubling_is_found_where_level_bands_see_little(seed: int) -> None:
    values = noise(seed)
    values[2500:] = 100 + (values[2500:] - 100) * 2
    flags = flagged_after(values, 2500)
    assert flags.size and flags[0] < 2532  # within two windows of 16 steps
    assert flags.size > 200  # and says so for much of the 500 points it lasts
    # A point of twice the noise is rarely beyond a calibrated level band.
    band = DETECTORS["robust"]().fit(Series.from_arrays(TIMES[:2000], values[:2000]))
    assert band.score(TIMES[2500:], values[2500:]).anomaly.mean() < 0.1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stuck_sensor_is_found_at_any_level(seed: int) -> None:
    values = noise(seed)
    values[2500:] = values[2499]  # stuck where it was: no band sees anything
    scores = fitted(values).score(TIMES[2000:], values[2000:])
    flags = np.flatnonzero(scores.anomaly) + 2000
    after = flags[flags >= 2500]
    assert after.size and after[0] < 2516  # within a window
    assert np.all(scores.anomaly[after[0] - 2000 :])  # flagged while it stays stuck
    stuck = after[0] - 2000
    assert scores.side[stuck] == 0  # flagged inside its band: nothing was out of place
    incident = scores.incident
    assert incident is not None
    assert incident[stuck] == 1 and not np.any(incident[stuck + 1 :] == 1)  # one alert


def test_the_direction_chooses_which_change_counts() -> None:
    louder = noise(4)
    louder[2500:] = 100 + (louder[2500:] - 100) * 3
    stuck = noise(4)
    stuck[2500:] = stuck[2499]
    assert flagged_after(louder, 2500, direction="upper").size
    assert not flagged_after(louder, 2500, direction="lower").size
    assert flagged_after(stuck, 2500, direction="lower").size
    assert not flagged_after(stuck, 2500, direction="upper").size


def test_denser_spikes_are_found_where_single_spikes_are_normal() -> None:
    """A counter that is 0 with a burst every 100 points (as in training), then a burst
    every 10: each burst alone is as high as ever, only the density changed."""
    values = np.zeros(TIMES.size)
    values[np.arange(50, 2600, 100)] = 20.0
    values[np.arange(2600, 3000, 10)] = 20.0
    scores = fitted(values).score(TIMES[2000:], values[2000:])
    flags = np.flatnonzero(scores.anomaly) + 2000
    assert not np.any(flags < 2600)  # one burst in a window is normal
    assert flags.size and flags[0] < 2650
    robust = DETECTORS["robust"]().fit(Series.from_arrays(TIMES[:2000], values[:2000]))
    assert robust.score(TIMES[2000:2600], values[2000:2600]).anomaly.any()  # it flags every burst


def test_the_band_is_the_values_that_keep_the_window_calm() -> None:
    values = noise(5)
    detector = fitted(values)
    context = detector.initial_context()
    point = detector.peek_one(context, float(TIMES[2000]), 100.0)
    assert point.expected == values[1999]  # the previous value
    assert point.upper - point.expected == pytest.approx(point.expected - point.lower)
    edge = detector.peek_one(context, float(TIMES[2000]), point.upper)
    assert edge.score == pytest.approx(0.5) and not edge.anomaly
    beyond = detector.peek_one(context, float(TIMES[2000]), point.upper + 1e-6)
    assert beyond.anomaly and beyond.side == 1
    # A step taken up a window's worth of room: the next band is narrower.
    detector.observe_one(context, float(TIMES[2000]), point.upper)
    after = detector.peek_one(context, float(TIMES[2001]), point.upper)
    assert after.upper - after.expected < point.upper - point.expected


def test_a_short_training_series_shrinks_the_window_to_half_its_steps() -> None:
    values = noise(6)[:21]
    detector = SpreadDetector({"window": 64}).fit(Series.from_arrays(TIMES[:21], values))
    assert detector.window_ == 10
    assert len(detector.initial_context().steps) == 10


def test_a_constant_training_series_flags_any_movement() -> None:
    detector = SpreadDetector().fit(Series.from_arrays(TIMES[:100], np.full(100, 3.0)))
    assert not detector.score_point(float(TIMES[100]), 3.0).anomaly
    moved = detector.score_point(float(TIMES[100]), 3.5)
    assert moved.anomaly and moved.score == 1.0


def test_a_context_survives_its_json_and_rejects_garbage() -> None:
    detector = fitted(noise(7))
    context = detector.context_after(TIMES[2000:2050], noise(7)[2000:2050])
    again = detector.load_context(context.dump())
    assert again.dump() == context.dump()
    assert detector.load_context({"last": "x", "steps": [1.0]}).dump() == {
        "last": None,
        "steps": [],
    }
    assert detector.load_context({"last": 1.0, "steps": [-1.0]}).steps == []  # type: ignore[attr-defined]


def test_the_window_is_bounded() -> None:
    with pytest.raises(InvalidInput, match="window"):
        SpreadDetector({"window": 5000})


@pytest.mark.parametrize("step", [0.1, 1.0, 3.7])
def test_a_perfectly_regular_ramp_raises_no_alarm(step: float) -> None:
    """Every step alike: rounding in the last bits is not activity."""
    values = 1_000.0 + step * np.arange(TIMES.size)
    scores = fitted(values).score(TIMES[2000:], values[2000:])
    assert not scores.anomaly.any()


def test_one_huge_training_value_does_not_blur_the_other_windows() -> None:
    values = noise(8)
    values[5] = 1e17  # a glitch: each window is summed alone, so the rest stay exact
    values[2500:] = values[2499]
    detector = fitted(values)
    clean = fitted(noise(8))
    assert detector.center_ == pytest.approx(clean.center_, rel=0.01)  # 16 windows moved
    assert flagged_after(values, 2500).size > 400  # the stuck sensor is still found


def test_steps_beyond_float_range_keep_the_context_restorable() -> None:
    detector = fitted(noise(9))
    context = detector.initial_context()
    for offset, value in enumerate([100.0, 1.7e308, -1.7e308, 100.0]):
        detector.observe_one(context, float(TIMES[2000 + offset]), value)
    data = context.dump()
    assert all(np.isfinite(data["steps"]))
    again = detector.load_context(data)
    follow = float(TIMES[2010]), 100.5
    assert detector.peek_one(again, *follow) == detector.peek_one(context, *follow)
