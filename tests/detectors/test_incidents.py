"""Incidents: one alert per incident, kept apart from the band (never by stretching it)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, AdaptiveDetector, Series
from anomaly_api.detectors.bands import PointScore
from anomaly_api.detectors.incidents import NEW, NONE, ONGOING, Incident, half_widths

HOUR = 3600
DAY = 24 * HOUR


def point(side: int, score: float = 0.8, expected: float = 100.0) -> PointScore:
    """An anomalous point's answer with a band of expected ± 10."""
    return PointScore(expected, expected - 10.0, expected + 10.0, score, True, side)


def test_the_rules_one_by_one() -> None:
    incident = Incident()
    rules = {"baseline": 0.0, "cooldown": float(HOUR), "escalation": 2.0}
    # None open: new. Then the same side within the cooldown: ongoing.
    assert incident.mark(0.0, 120.0, point(1), **rules) == NEW
    assert incident.mark(600.0, 121.0, point(1), **rules) == ONGOING
    # A quiet gap longer than the cooldown closes it.
    assert incident.mark(600.0 + HOUR + 1, 121.0, point(1), **rules) == NEW
    # The other side, beyond what was normal when it began (below 90): another kind.
    assert incident.mark(5000.0, 80.0, point(-1), **rules) == NEW
    # The band follows the dip down (expected 65); the series coming back above it, but
    # not above the band of before the dip (110): the same incident.
    assert incident.mark(5100.0, 100.0, point(1, expected=65.0), **rules) == ONGOING
    # Beyond it: a spike after the dip, another kind.
    assert incident.mark(5150.0, 115.0, point(1, expected=65.0), **rules) == NEW
    # Markedly worse (more than twice as far out, in half-widths): new.
    far = 1.0 - 1e-6  # a score near 1: ~1000 half-widths out
    assert half_widths(far) > 2 * half_widths(0.8)
    assert incident.mark(5200.0, 500.0, point(1, score=far), **rules) == NEW
    # Escalation off: the same would be ongoing.
    calm = Incident(1, 5200.0, 2.0, 100.0, 10.0, 10.0)
    assert calm.mark(5300.0, 500.0, point(1, score=far), 0.0, HOUR, 0.0) == ONGOING


def test_what_was_normal_is_compared_at_the_same_point_of_the_season() -> None:
    """A dip at a daily low (profile 40), then a value above the band at a daily high
    (profile 60): 'normal' there is 60 ± 10, not the 40 ± 10 of the dip's time."""
    incident = Incident()
    assert incident.mark(0.0, 20.0, point(-1, expected=40.0), 40.0, DAY, 0.0) == NEW
    assert incident.mark(HOUR, 65.0, point(1, expected=50.0), 60.0, DAY, 0.0) == ONGOING
    assert incident.mark(HOUR, 75.0, point(1, expected=50.0), 60.0, DAY, 0.0) == NEW


def test_a_sustained_change_inside_the_band_joins_the_open_incident_and_takes_a_side() -> None:
    incident = Incident()
    assert incident.mark(0.0, 100.0, point(0, score=0.6), 0.0, HOUR, 0.0) == NEW
    assert incident.mark(300.0, 80.0, point(-1), 0.0, HOUR, 0.0) == ONGOING
    assert incident.side == -1
    assert incident.mark(600.0, 100.0, point(0), 0.0, HOUR, 0.0) == ONGOING


def test_classifying_learns_nothing() -> None:
    incident = Incident()
    assert incident.classify(0.0, 120.0, point(1), 0.0, HOUR, 2.0) == NEW
    assert incident == Incident()


@pytest.mark.parametrize(
    "state",
    [
        Incident(),
        Incident(1, 5.0, 1.5, 100.0, 10.0, 10.0),
        Incident(-1, 7.0, math.inf, -4.0, 3.0, math.inf),
    ],
)
def test_the_state_round_trips_through_json(state: Incident) -> None:
    assert Incident.from_json(json.loads(json.dumps(state.to_json()))) == state


@pytest.mark.parametrize(
    "junk",
    [None, [], [1, 2, 3], [5, 0, 0, 0, 0, 0], ["a", 1, 1, 1, 1, 1], [1, None, 1, 1, 1, 1], {}],
)
def test_anything_else_in_the_json_is_no_incident(junk: object) -> None:
    assert Incident.from_json(junk) == Incident()


def daily(days: float, seed: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """5-minute values with a daily cycle (amplitude 10) and noise of sigma 1."""
    times = start + 300 * np.arange(int(days * 288))
    rng = np.random.default_rng(seed)
    return times, 50 + 10 * np.sin(2 * np.pi * times / DAY) + rng.normal(0, 1, times.size)


@pytest.mark.parametrize("shift", [9.0, -9.0])
def test_a_second_incident_eight_hours_after_a_dip_is_flagged_and_the_band_is_unchanged(
    shift: float,
) -> None:
    """The case the stretched band missed: a dip, then eight hours later a two-hour
    level shift of 9 sigma. Both are flagged, each opens an incident, and the band at
    the shift is exactly the band without the dip."""
    train_t, train_v = daily(14, seed=1)
    detector = AdaptiveDetector().fit(Series.from_arrays(train_t, train_v))
    times, calm = daily(2, seed=2, start=int(train_t[-1]) + 300)
    values = calm.copy()
    dip = 100  # 8:20 on the first day
    values[dip : dip + 3] -= 12.0
    shift_at = dip + 8 * 12  # 8 hours later
    values[shift_at : shift_at + 24] += shift  # 2 hours
    scores = detector.score(times, values)
    without_dip = detector.score(times, np.where(np.arange(times.size) < dip + 3, calm, values))
    assert scores.incident is not None
    assert scores.anomaly[dip] and scores.incident[dip] == NEW
    assert scores.anomaly[shift_at]
    if shift > 0:  # above the band of before the dip: another kind, a new incident
        assert scores.incident[shift_at] == NEW
    else:
        # The same side, no worse, within the day-long default cooldown: flagged, and
        # marked as the dip's incident going on. A fit that wants eight quiet hours to
        # close an incident says so, and then it is new.
        assert scores.incident[shift_at] == ONGOING
        shorter = AdaptiveDetector({"cooldown_seconds": 4 * HOUR}).fit(
            Series.from_arrays(train_t, train_v)
        )
        marked = shorter.score(times, values).incident
        assert marked is not None and marked[shift_at] == NEW
    # No stretching: once the dip has left the rolling level, the band is the same.
    after = slice(dip + 10, None)
    np.testing.assert_array_equal(scores.lower[after], without_dip.lower[after])
    np.testing.assert_array_equal(scores.upper[after], without_dip.upper[after])
    # Between the two, nothing opened an incident (the dip's after-effects on the
    # sustained part belong to it).
    assert not (scores.incident[dip + 1 : shift_at] == NEW).any()


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_opens_one_incident_for_a_run_of_anomalies(name: str) -> None:
    train_t, train_v = daily(7, seed=3)
    detector = DETECTORS[name]().fit(Series.from_arrays(train_t, train_v))
    times, values = daily(1, seed=4, start=int(train_t[-1]) + 300)
    values[100:130] += 500.0  # two and a half hours far above anything seen
    scores = detector.score(times, values)
    assert scores.incident is not None
    assert scores.incident[100] == NEW
    assert np.all(scores.incident[101:130][scores.anomaly[101:130]] == ONGOING)
    assert np.all(scores.incident[~scores.anomaly] == NONE)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_cooldown_zero_makes_every_anomalous_point_new(name: str) -> None:
    train_t, train_v = daily(7, seed=3)
    detector = DETECTORS[name]({"cooldown_seconds": 0}).fit(Series.from_arrays(train_t, train_v))
    times, values = daily(1, seed=4, start=int(train_t[-1]) + 300)
    values[100:130] += 500.0
    scores = detector.score(times, values)
    assert scores.incident is not None
    np.testing.assert_array_equal(scores.incident[scores.anomaly], NEW)
