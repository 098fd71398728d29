"""Change points by the Chow test: level shifts and changes of trend, confidences in
[0, 1], one point per change, nothing on a steady series."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors.changepoint import change_points
from anomaly_api.errors import InvalidInput


def test_a_level_shift_is_found_where_it_starts() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 150), rng.normal(6, 1, 150)])
    found = change_points(values, window=20, threshold=0.999)
    assert np.flatnonzero(found.is_change_point).tolist() == [150]
    assert found.confidence[150] > 0.999999
    assert np.all((found.confidence >= 0) & (found.confidence <= 1))


def test_a_change_of_trend_without_a_jump_is_found() -> None:
    rng = np.random.default_rng(1)
    x = np.arange(300.0)
    values = np.where(x < 180, 0.02 * x, 0.02 * 180 + 0.4 * (x - 180)) + rng.normal(0, 0.5, 300)
    flagged = np.flatnonzero(change_points(values, window=30, threshold=0.999).is_change_point)
    assert flagged.size == 1 and abs(int(flagged[0]) - 180) <= 10


def test_steady_lines_and_clean_steps() -> None:
    line = np.arange(100.0) * 3 + 7
    assert not change_points(line, window=5, threshold=0.5).is_change_point.any()
    step = np.r_[np.zeros(40), np.full(40, 2.0)]
    found = change_points(step, window=5, threshold=0.9)
    assert np.flatnonzero(found.is_change_point).tolist() == [40]
    assert found.confidence[40] == 1.0


def test_splits_too_near_the_ends_have_no_confidence() -> None:
    values = np.r_[np.zeros(10), np.ones(10)]
    found = change_points(values, window=10, threshold=0.5)
    assert found.confidence[:10].max() == 0 and found.confidence[11:].max() == 0
    assert change_points(np.ones(8), window=5, threshold=0.5).confidence.tolist() == [0.0] * 8


@pytest.mark.parametrize(("window", "threshold"), [(2, 0.5), (5, 0.0), (5, 1.0)])
def test_bad_arguments_are_refused(window: int, threshold: float) -> None:
    with pytest.raises(InvalidInput):
        change_points(np.zeros(50), window=window, threshold=threshold)
