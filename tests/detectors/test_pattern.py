"""``pattern``: a window's shape against its nearest match in training; a new rhythm of
familiar values is found, the old rhythm is not; the band is exact; state stays bounded."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, PatternDetector, Series
from anomaly_api.detectors.pattern import PatternContext

TIMES = 300 * np.arange(3000)


def bursts(seed: int) -> np.ndarray:
    """Noise of 0.3 around 5, a burst of +6 every 48 points, every 12 in 2000..2200."""
    values = 5 + np.random.default_rng(seed).normal(0, 0.3, TIMES.size)
    values[::48] += 6
    values[2000:2200:12] += 6
    return values


def training(values: np.ndarray, size: int = 1500) -> Series:
    return Series.from_arrays(TIMES[:size], values[:size])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_new_rhythm_of_familiar_values_is_found_where_level_bands_cannot_tell(
    seed: int,
) -> None:
    values = bursts(seed)
    scores = PatternDetector().fit(training(values)).score(TIMES[1500:], values[1500:])
    assert scores.incident is not None
    alerts = np.flatnonzero(scores.incident == 1) + 1500
    changed = alerts[(alerts >= 2000) & (alerts < 2248)]
    assert changed.size and changed[0] < 2040  # by the third early burst
    # The old rhythm, before and after (750 points): noise makes the odd stretch unlike
    # all of 1,500 training points (threshold 1, the cross-validated default, trades a
    # few such alerts for sensitivity), no more; the old bursts themselves are normal.
    assert alerts.size - changed.size <= 6
    assert scores.anomaly[: 2000 - 1500].mean() < 0.01
    assert not scores.anomaly[1500 - 1500 : 2000 - 1500 : 48].any()
    # A level band sees a burst the same in either rhythm: it flags the old ones alike.
    robust = DETECTORS["robust"]().fit(training(values)).score(TIMES[1500:2000], values[1500:2000])
    assert robust.anomaly.sum() >= 8


def test_the_band_is_the_values_that_keep_the_shape_within_the_limit() -> None:
    values = bursts(4)
    detector = PatternDetector().fit(training(values))
    context = detector.initial_context()
    stamp = float(TIMES[1500])
    point = detector.peek_one(context, stamp, 5.0)
    assert point.lower < point.expected < point.upper
    assert point.score < 0.5 and not point.anomaly
    edge = detector.peek_one(context, stamp, point.upper)
    assert edge.score == pytest.approx(0.5, abs=1e-6)
    beyond = detector.peek_one(context, stamp, point.upper + 1e-3)
    assert beyond.anomaly and beyond.side == 1
    below = detector.peek_one(context, stamp, point.lower - 1e-3)
    assert below.anomaly and below.side == -1


def test_the_direction_chooses_which_side_counts() -> None:
    values = 5 + np.random.default_rng(5).normal(0, 0.3, TIMES.size)
    values[::48] += 6  # the old rhythm only
    upward = values.copy()
    upward[1700:1710] += 4  # a plateau unlike anything in training
    downward = values.copy()
    downward[1700:1710] -= 4
    for series, watched, ignored in ((upward, "upper", "lower"), (downward, "lower", "upper")):
        for direction, expect in ((watched, True), (ignored, False), ("both", True)):
            detector = PatternDetector({"direction": direction}).fit(training(series))
            scores = detector.score(TIMES[1500:1710], series[1500:1710])
            flagged = scores.anomaly[200:].any()  # the plateau's points
            assert bool(flagged) is expect, (direction, expect)


def test_constant_training_makes_any_change_of_form_an_anomaly() -> None:
    flat = np.full(600, 7.0)
    detector = PatternDetector().fit(Series.from_arrays(TIMES[:600], flat))
    scores = detector.score(TIMES[600:700], np.full(100, 7.0))
    assert not scores.anomaly.any()
    assert np.all(scores.expected == 7.0)
    step = detector.score(TIMES[600:601], np.array([7.5]))
    assert step.anomaly[0] and step.side is not None and step.side[0] == 1


def test_the_window_and_the_history_bound_what_is_kept() -> None:
    values = bursts(6)
    short = PatternDetector({"window": 200}).fit(training(values, 100))
    assert short.window_ == 25  # a quarter of the training points
    assert short.score(TIMES[100:400], values[100:400]).expected.size == 300
    long = PatternDetector({"history": 500}).fit(training(values, 3000))
    assert len(long.reference_) == 500
    context = long.initial_context()
    assert isinstance(context, PatternContext)
    assert len(context.recent) == long.window_ - 1
    for value in values[:2000]:
        long.observe_one(context, 0.0, float(value))
    assert len(context.recent) == long.window_ - 1
    assert context.position <= 500  # bounded however long the stream


def test_the_context_round_trips_and_garbage_starts_afresh() -> None:
    values = bursts(7)
    detector = PatternDetector().fit(training(values))
    context = detector.initial_context()
    for value in values[1500:1600]:
        detector.observe_one(context, 0.0, float(value))
    restored = PatternContext.from_json(context.to_json())
    assert restored.recent == context.recent and restored.position == context.position
    for garbage in (
        {"recent": "nope"},
        {"recent": [1.0, "x"]},
        {"recent": [1.0, float("nan")]},
        {"recent": [1.0], "position": True},
        {},
    ):
        parsed = PatternContext.from_json(garbage)
        assert all(np.isfinite(parsed.recent)) and isinstance(parsed.position, int)
    # A context shorter than the window fills up before judging; nothing raises.
    point = detector.observe_one(PatternContext([5.0], 0), 0.0, 5.0)
    assert not point.anomaly


def test_the_model_survives_its_state_and_huge_values() -> None:
    values = bursts(8)
    detector = PatternDetector().fit(training(values))
    again = PatternDetector.from_state(detector.params, detector.state())
    part = slice(1500, 2300)
    first = detector.score(TIMES[part], values[part])
    second = again.score(TIMES[part], values[part])
    np.testing.assert_array_equal(first.anomaly, second.anomaly)
    np.testing.assert_allclose(first.expected, second.expected)
    huge = np.array([1e300, -1e300, 1e308, 5.0])
    scores = detector.score(TIMES[:4], huge)
    assert scores.anomaly[:3].all()
    assert np.all(np.isfinite(scores.expected))
    wild = PatternDetector().fit(Series.from_arrays(TIMES[:200], np.tile([1e300, -1e300], 100)))
    assert np.all(np.isfinite(wild.score(TIMES[200:210], np.full(10, 1e300)).expected))


def test_a_cycle_that_repeats_exactly_is_never_flagged() -> None:
    """Plateaus and steps that repeat to the last bit (a synthetic cycle, NAB's
    ``art_daily_no_noise``): every distance is rounding, which must not alarm."""
    day = np.concatenate((np.full(100, 20.0), 80 - 60 * 0.2 ** np.arange(120), np.full(68, 20.0)))
    values = np.tile(day, 12)
    times = 300 * np.arange(values.size)
    detector = PatternDetector().fit(Series.from_arrays(times[:600], values[:600]))
    assert not detector.score(times[600:], values[600:]).anomaly.any()
