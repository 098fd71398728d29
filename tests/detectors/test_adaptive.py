"""The ``adaptive`` detector's own parts: the range part, the band it reports, old states."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomaly_api.detectors import AdaptiveDetector, Series
from anomaly_api.detectors.incidents import NEW, NONE

HOUR = 3600


def wavy(points: int, start: int = 0, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Hourly values swinging between about 65 and 75 on a 37-hour cycle (no daily profile)."""
    hours = np.arange(start, start + points)
    noise = np.random.default_rng(seed).normal(0, 0.3, points)
    return hours * HOUR, 70 + 5 * np.sin(2 * np.pi * hours / 37) + noise


def climb(direction: float = 1.0) -> tuple[AdaptiveDetector, np.ndarray, np.ndarray]:
    """Training on :func:`wavy`, then the same swing drifting 0.1 per hour away from it."""
    times, values = wavy(600)
    later_times, later = wavy(400, start=600, seed=6)
    return (
        AdaptiveDetector().fit(Series.from_arrays(times, values)),
        later_times,
        later + direction * 0.1 * np.arange(400),
    )


def test_a_slow_climb_beyond_the_training_range_is_flagged() -> None:
    detector, times, values = climb()
    flagged = np.flatnonzero(detector.score(times, values).anomaly)
    assert flagged.size >= 1
    # Flagged only once well past the old maximum (75 + 1.5 x 10% of the ~10 range).
    assert values[flagged[0]] > detector.high_ + 1.5 * 0.1 * (detector.high_ - detector.low_)
    # The same climb, point by point, moves too little for the other parts to notice.
    blind = AdaptiveDetector({"range_margin": 0.0}).fit(Series.from_arrays(*wavy(600)))
    assert not blind.score(times, values).anomaly.any()


def test_an_ongoing_excursion_is_one_incident_and_the_band_does_not_stretch() -> None:
    detector, times, values = climb()
    scores = detector.score(times, values)
    flagged = np.flatnonzero(scores.anomaly)
    assert flagged.size >= 2
    assert scores.incident is not None
    assert scores.incident[flagged[0]] == NEW
    news = flagged[scores.incident[flagged] == NEW]
    # A climb that keeps going is one incident; it is news again only when it is twice as
    # far out as its worst point so far (the escalation rule), which a slow climb rarely is.
    assert news.size <= 3
    assert np.all(scores.incident[flagged] != NONE)
    assert np.all(scores.incident[~scores.anomaly] == NONE)
    # The band is the model's: it stays where the range part fires, alert or not.
    reach = 1.5 * 0.1 * (detector.high_ - detector.low_)
    assert np.all(scores.upper <= detector.high_ + reach + 1e-9)


def test_the_range_part_watches_only_the_chosen_side() -> None:
    times, values = wavy(600)
    later_times, later = wavy(400, start=600, seed=6)
    falling = later - 0.1 * np.arange(400)
    upper_only = AdaptiveDetector({"direction": "upper"}).fit(Series.from_arrays(times, values))
    assert not upper_only.score(later_times, falling).anomaly.any()
    both = AdaptiveDetector().fit(Series.from_arrays(times, values))
    assert both.score(later_times, falling).anomaly.any()


def test_the_band_reports_the_range_bounds_and_never_inverts() -> None:
    detector, times, values = climb()
    scores = detector.score(times, values)
    assert np.all(scores.lower <= scores.upper)
    first = int(np.flatnonzero(scores.anomaly)[0])
    # The band stops where the range part would fire.
    reach = 1.5 * 0.1 * (detector.high_ - detector.low_)
    assert np.all(scores.upper[: first + 1] <= detector.high_ + reach + 1e-9)
    assert scores.upper[first] == pytest.approx(detector.high_ + reach)
    # And it is the ordinary band before that: the values lie inside it.
    inside = (values[:first] >= scores.lower[:first]) & (values[:first] <= scores.upper[:first])
    assert inside.mean() > 0.95


def test_a_model_stored_before_the_range_part_still_scores() -> None:
    detector, times, values = climb()
    state = json.loads(json.dumps(detector.state()))
    del state["low"], state["high"]
    restored = AdaptiveDetector.from_state(detector.params, state)
    without_range = AdaptiveDetector.from_state(
        {**detector.params, "range_margin": 0.0}, detector.state()
    )
    old, expected = restored.score(times, values), without_range.score(times, values)
    np.testing.assert_array_equal(old.anomaly, expected.anomaly)
    assert np.all(np.isfinite(old.lower)) and np.all(np.isfinite(old.upper))


def test_state_stays_small_for_dense_data() -> None:
    seconds = np.arange(100_000)
    values = np.random.default_rng(4).normal(0, 1, seconds.size)
    detector = AdaptiveDetector().fit(Series.from_arrays(seconds, values))
    assert len(json.dumps(detector.state())) < 100_000  # not a day of 1-second points
    assert "recent_times" not in detector.state()  # the band no longer keeps recent maxima
