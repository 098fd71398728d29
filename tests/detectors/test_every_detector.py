"""The contract every registered detector keeps (river's check suite, in small)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_api.detectors import DETECTORS, Detector, Series
from anomaly_api.errors import InvalidInput

ALL = sorted(DETECTORS.items())


def noisy(points: int = 400, seed: int = 3) -> Series:
    rng = np.random.default_rng(seed)
    timestamps = 1_691_000_000 + 300 * np.arange(points)
    return Series.from_arrays(timestamps, 100 + rng.normal(0, 5, points))


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_state_round_trips_through_json(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy())
    restored = cls.from_state(
        json.loads(json.dumps(detector.params)), json.loads(json.dumps(detector.state()))
    )
    probe_ts = 1_691_000_000 + 300 * np.arange(400, 420)
    probe = np.linspace(50, 150, 20)
    a, b = detector.score(probe_ts, probe), restored.score(probe_ts, probe)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.anomaly, b.anomaly)


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_flags_both_sides_by_default(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy())
    ts = 1_691_000_000 + 300 * np.arange(400, 402)
    scores = detector.score(ts, [1_000.0, -1_000.0])
    assert scores.anomaly.tolist() == [True, True]
    assert scores.side.tolist() == [1, -1]


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_repeatable(name: str, cls: type[Detector]) -> None:
    first = cls().fit(noisy()).state()
    second = cls().fit(noisy()).state()
    assert first == second


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_rejects_non_finite_points(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy())
    with pytest.raises(InvalidInput, match="finite"):
        detector.score([0, 1], [1.0, float("nan")])


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_constant_series(name: str, cls: type[Detector]) -> None:
    series = Series.from_arrays(np.arange(100) * 60, np.full(100, 7.0))
    detector = cls().fit(series)
    scores = detector.score([6000, 6060], [7.0, 8.0])
    assert scores.anomaly.tolist() == [False, True]


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_fits_on_the_minimum_points(name: str, cls: type[Detector]) -> None:
    series = noisy(points=cls.min_points)
    cls().fit(series)
    with pytest.raises(InvalidInput, match=f"at least {cls.min_points}"):
        cls().fit(series.tail(cls.min_points - 1))


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_scores_are_in_unit_interval_and_match_decision(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy())
    ts = 1_691_000_000 + 300 * np.arange(400, 600)
    scores = detector.score(ts, np.linspace(-100, 300, 200))
    assert bool(np.all((scores.score >= 0) & (scores.score <= 1)))
    np.testing.assert_array_equal(scores.anomaly, scores.score > 0.5)


@pytest.mark.parametrize(("name", "cls"), ALL)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=50)
def test_any_finite_value_gets_a_finite_score(name: str, cls: type[Detector], value: float) -> None:
    detector = cls().fit(noisy())
    scores = detector.score([1_691_200_000], [value])
    assert 0.0 <= scores.score[0] <= 1.0
    assert bool(scores.anomaly[0]) == bool(scores.score[0] > 0.5)


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_describes_its_parameters(name: str, cls: type[Detector]) -> None:
    described = cls.describe()
    assert described["name"] == name
    assert described["description"]
    for parameter in described["parameters"]:
        assert parameter["description"]
        cls.validate_params({parameter["name"]: parameter["default"]})


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_fitted_scores_cover_the_training_data(name: str, cls: type[Detector]) -> None:
    series = noisy()
    scores = cls().fit(series).fitted_scores(series)
    assert len(scores) == len(series)
    assert scores.anomaly.mean() < 0.05  # its own training data is mostly normal


@pytest.mark.parametrize(("name", "cls"), ALL)
@pytest.mark.parametrize("direction", ["both", "upper", "lower"])
@settings(max_examples=60, deadline=None)
@given(
    value=st.floats(allow_nan=False, allow_infinity=False),
    offset=st.integers(min_value=0, max_value=14 * 86_400),
)
def test_score_point_is_score_for_one_point(
    name: str, cls: type[Detector], direction: str, value: float, offset: int
) -> None:
    detector = cls({"direction": direction}).fit(noisy(points=3000))
    timestamp = float(1_691_000_000 + 300 * 3000 + offset)
    point = detector.score_point(timestamp, value)
    scores = detector.score([timestamp], [value])
    assert point.expected == scores.expected[0]
    assert point.lower == scores.lower[0] and point.upper == scores.upper[0]
    assert point.score == scores.score[0]
    assert point.anomaly == bool(scores.anomaly[0]) and point.side == int(scores.side[0])


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_score_point_handles_a_constant_model(name: str, cls: type[Detector]) -> None:
    series = Series.from_arrays(1_691_000_000 + 300 * np.arange(50), np.full(50, 7.0))
    detector = cls().fit(series)
    assert not detector.score_point(1_691_015_000.0, 7.0).anomaly
    far = detector.score_point(1_691_015_000.0, 8.0)
    assert far.anomaly and far.score == 1.0


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_score_point_rejects_non_finite(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy())
    with pytest.raises(InvalidInput, match="value"):
        detector.score_point(1_691_200_000.0, float("nan"))
