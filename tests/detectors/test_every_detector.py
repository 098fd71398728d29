"""The contract every registered detector keeps (river's check suite, in small)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_api.detectors import (
    DETECTORS,
    Detector,
    PatternDetector,
    Scores,
    Series,
    SpreadDetector,
)
from anomaly_api.detectors.incidents import NEW
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
    series = Series.from_arrays(1_691_000_000 + 300 * np.arange(100), np.full(100, 7.0))
    detector = cls().fit(series)
    assert not detector.score_point(1_691_015_000.0, 7.0).anomaly
    far = detector.score_point(1_691_015_000.0, 8.0)
    assert far.anomaly and far.score == 1.0


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_score_point_rejects_non_finite(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy())
    with pytest.raises(InvalidInput, match="value"):
        detector.score_point(1_691_200_000.0, float("nan"))


# -- the stream: point by point is one batch, and the context is JSON ---------------------


def eventful(points: int, seed: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """A stream with what detectors react to: noise, spikes, a level shift, a flat run,
    a run of outliers, and a repeat of the first part."""
    rng = np.random.default_rng(seed)
    values = 100 + rng.normal(0, 5, points)
    values[points // 10 :: 37] += rng.choice([-1, 1], values[points // 10 :: 37].size) * 60
    values[points // 2 :] += 40
    values[points // 3 : points // 3 + 20] = values[points // 3]
    values[2 * points // 3 : 2 * points // 3 + 50] = 400 + rng.normal(0, 1, 50)
    timestamps = start + 300 * np.arange(points)
    return timestamps, values


def assert_same_scores(a: Scores, b: Scores) -> None:
    for field in ("expected", "lower", "upper", "score", "anomaly", "side", "incident"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def one_by_one(detector: Detector, context, timestamps, values) -> Scores:  # type: ignore[no-untyped-def]
    points = [
        detector.observe_one(context, float(t), float(v))
        for t, v in zip(timestamps, values, strict=True)
    ]
    return Scores(
        expected=np.array([p.expected for p in points]),
        lower=np.array([p.lower for p in points]),
        upper=np.array([p.upper for p in points]),
        score=np.array([p.score for p in points]),
        anomaly=np.array([p.anomaly for p in points]),
        side=np.array([p.side for p in points], dtype=np.int8),
        incident=np.array([p.incident for p in points], dtype=np.int8),
    )


@pytest.mark.parametrize(("name", "cls"), ALL)
@pytest.mark.parametrize("direction", ["both", "upper", "lower"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_stream_point_by_point_scores_as_one_batch(
    name: str, cls: type[Detector], direction: str, seed: int
) -> None:
    detector = cls({"direction": direction}).fit(noisy(points=600, seed=seed))
    timestamps, values = eventful(3000, seed, start=1_691_000_000 + 300 * 600)
    batch_context, single_context = detector.initial_context(), detector.initial_context()
    batch = detector.score_stream(batch_context, timestamps, values)
    single = one_by_one(detector, single_context, timestamps, values)
    assert_same_scores(single, batch)
    assert batch_context.dump() == single_context.dump()
    assert batch.anomaly.any() and not batch.anomaly.all()  # the stream has news in it
    # Every anomalous point is marked, the first of the stream as a new incident.
    assert batch.incident is not None
    np.testing.assert_array_equal(batch.incident > 0, batch.anomaly)
    assert batch.incident[np.argmax(batch.anomaly)] == NEW


@pytest.mark.parametrize(("name", "cls"), ALL)
@pytest.mark.parametrize("split", [1, 17, 1500])
def test_the_context_survives_json_and_goes_on_scoring_alike(
    name: str, cls: type[Detector], split: int
) -> None:
    detector = cls().fit(noisy(points=600))
    timestamps, values = eventful(2000, 3, start=1_691_000_000 + 300 * 600)
    context = detector.initial_context()
    detector.score_stream(context, timestamps[:split], values[:split])
    restored = detector.load_context(json.loads(json.dumps(context.dump())))
    assert restored.dump() == context.dump()
    rest = (timestamps[split:], values[split:])
    assert_same_scores(
        detector.score_stream(restored, *rest), detector.score_stream(context, *rest)
    )
    # ... also through a detector rebuilt from its stored state.
    again = cls.from_state(detector.params, json.loads(json.dumps(detector.state())))
    assert again.initial_context().to_json() == detector.initial_context().to_json()


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_peeking_leaves_the_context_alone(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy(points=600))
    timestamps, values = eventful(300, 4, start=1_691_000_000 + 300 * 600)
    context = detector.context_after(timestamps, values)
    before = context.dump()
    peeked = detector.peek_one(context, float(timestamps[-1] + 300), 1_000.0)
    assert context.dump() == before
    observed = detector.observe_one(context, float(timestamps[-1] + 300), 1_000.0)
    assert peeked == observed


@pytest.mark.parametrize(("name", "cls"), ALL)
@pytest.mark.parametrize("direction", ["both", "upper", "lower"])
def test_peeking_at_many_points_is_peeking_at_each(
    name: str, cls: type[Detector], direction: str
) -> None:
    detector = cls({"direction": direction}).fit(noisy(points=600))
    timestamps, values = eventful(600, 7, start=1_691_000_000 + 300 * 600)
    context = detector.context_after(timestamps[:300], values[:300])
    before = context.dump()
    # Older points, repeated ones and new ones, spikes included: each judged alone.
    later_t, later_v = timestamps[150:], values[150:].copy()
    later_v[[10, 200]] = [-1_000.0, 1_000.0]
    many = detector.peek_many(context, later_t.astype(np.float64), later_v)
    assert context.dump() == before
    each = [
        detector.peek_one(context, float(t), float(v))
        for t, v in zip(later_t, later_v, strict=True)
    ]
    assert_same_scores(
        many,
        Scores(
            expected=np.array([p.expected for p in each]),
            lower=np.array([p.lower for p in each]),
            upper=np.array([p.upper for p in each]),
            score=np.array([p.score for p in each]),
            anomaly=np.array([p.anomaly for p in each]),
            side=np.array([p.side for p in each], dtype=np.int8),
            incident=np.array([p.incident for p in each], dtype=np.int8),
        ),
    )
    # The context's last window holds a spike of 12 sigmas: pattern judges the window's
    # shape, which is unlike any in training whatever the next point.
    if cls is not PatternDetector:
        assert not many.anomaly.all()
    # One point cannot make spread's window of steps quieter than the training's.
    if not (cls is SpreadDetector and direction == "lower"):
        assert many.anomaly.any()


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_scoring_a_batch_remembers_nothing(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy(points=600))
    timestamps, values = eventful(300, 5, start=1_691_000_000 + 300 * 600)
    first = detector.score(timestamps, values)
    assert_same_scores(detector.score(timestamps, values), first)
    assert_same_scores(detector.score_stream(detector.initial_context(), timestamps, values), first)


@pytest.mark.parametrize(("name", "cls"), ALL)
def test_the_context_stays_small(name: str, cls: type[Detector]) -> None:
    detector = cls().fit(noisy(points=600))
    timestamps, values = eventful(20_000, 6, start=1_691_000_000 + 300 * 600)
    context = detector.context_after(timestamps, values)
    assert len(json.dumps(context.to_json())) < 8 * 1024
