from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly_api.detectors import Scores, Series, ZScoreDetector
from anomaly_api.errors import InvalidInput, InvalidParameter

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def fitted(values: list[float], **params: object) -> ZScoreDetector:
    return ZScoreDetector(params).fit(Series.from_arrays(np.arange(len(values)), values))


def probe(detector: ZScoreDetector, values: list[float]) -> Scores:
    """Each value judged on its own right after the training data (a batch would learn
    the normal ones first)."""
    points = [detector.score_point(0, value) for value in values]
    return Scores(
        expected=np.array([p.expected for p in points]),
        lower=np.array([p.lower for p in points]),
        upper=np.array([p.upper for p in points]),
        score=np.array([p.score for p in points]),
        anomaly=np.array([p.anomaly for p in points]),
        side=np.array([p.side for p in points], dtype=np.int8),
    )


def test_contract_example_mean_and_population_std() -> None:
    detector = fitted([10, 11, 9, 12, 15])
    assert detector.mean_ == pytest.approx(11.4)
    assert detector.std_ == pytest.approx(np.std([10, 11, 9, 12, 15]))
    scores = detector.score([1691000240], [18.0])
    assert scores.anomaly.tolist() == [True]  # 18 > 11.4 + 3 * 2.0591


def test_two_sided_by_default() -> None:
    detector = fitted([10, 11, 9, 12, 15])
    scores = detector.score([0, 0, 0], [11.4, 30.0, -10.0])
    assert scores.anomaly.tolist() == [False, True, True]
    assert scores.side.tolist() == [0, 1, -1]


@pytest.mark.parametrize(
    ("direction", "flags"),
    [("both", [True, True]), ("upper", [True, False]), ("lower", [False, True])],
)
def test_direction_limits_the_watched_side(direction: str, flags: list[bool]) -> None:
    detector = fitted([10, 11, 9, 12, 15], direction=direction)
    scores = detector.score([0, 0], [30.0, -10.0])
    assert scores.anomaly.tolist() == flags
    if direction == "upper":
        assert scores.lower[0] == -np.inf
    if direction == "lower":
        assert scores.upper[0] == np.inf


def test_boundary_is_not_anomalous_like_the_original() -> None:
    detector = fitted([0.0, 2.0, 0.0, 2.0, 0.0, 2.0], threshold=2.0)  # mean 1, std 1
    scores = probe(detector, [3.0, 3.0000001, -1.0])
    assert scores.anomaly.tolist() == [False, True, False]
    assert scores.score[0] == pytest.approx(0.5)


def test_constant_series_flags_any_departure() -> None:
    detector = fitted([0.0] * 10)
    scores = detector.score([0, 0, 0], [0.0, 1e-9, -3.0])
    assert scores.anomaly.tolist() == [False, True, True]
    assert scores.score.tolist() == [0.0, 1.0, 1.0]
    assert scores.lower.tolist() == scores.upper.tolist() == [0.0, 0.0, 0.0]


def test_constant_non_representable_value_is_exact() -> None:
    detector = fitted([0.1] * 7)
    assert detector.score([0], [0.1]).anomaly.tolist() == [False]


def test_needs_five_points_as_the_original() -> None:
    with pytest.raises(InvalidInput, match="at least 5 points"):
        fitted([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 0}, "greater than 0"),
        ({"threshold": -1}, "greater than 0"),
        ({"threshold": "3"}, "must be a number"),
        ({"threshold": True}, "must be a number"),
        ({"threshold": float("nan")}, "finite"),
        ({"direction": "sideways"}, "must be one of 'both', 'upper', 'lower'"),
        ({"window": 3}, "unknown parameter.*valid: threshold, direction"),
    ],
)
def test_bad_params_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        ZScoreDetector(params)


@given(st.lists(finite, min_size=5, max_size=60), finite, st.floats(0.5, 6.0))
def test_anomaly_iff_outside_k_std(values: list[float], probe: float, k: float) -> None:
    detector = fitted(values, threshold=k)
    scores = detector.score([0], [probe])
    distance = abs(probe - detector.mean_)
    if distance > k * detector.std_ * (1 + 1e-9) + 1e-9:
        assert scores.anomaly[0]
    if distance < k * detector.std_ * (1 - 1e-9) - 1e-9:
        assert not scores.anomaly[0]
    assert 0.0 <= scores.score[0] <= 1.0
    assert bool(scores.anomaly[0]) == bool(scores.score[0] > 0.5)


@given(st.lists(finite, min_size=5, max_size=60), finite, finite)
def test_score_grows_with_distance(values: list[float], a: float, b: float) -> None:
    detector = fitted(values)
    near, far = sorted([a, b], key=lambda v: abs(v - detector.mean_))
    scores = probe(detector, [near, far])
    assert scores.score[0] <= scores.score[1]


@given(st.lists(finite, min_size=5, max_size=60), finite)
def test_symmetric_for_both_sides(values: list[float], offset: float) -> None:
    detector = fitted(values)
    scores = probe(detector, [detector.mean_ + offset, detector.mean_ - offset])
    assert scores.score[0] == pytest.approx(scores.score[1], abs=1e-9)
