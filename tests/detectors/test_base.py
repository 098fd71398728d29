from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import band_scores


def test_score_is_half_on_the_band_edge_for_every_width() -> None:
    for width in (0.001, 1.0, 1e6):
        scores = band_scores(np.array([5.0 + width]), np.array(5.0), np.array(width), "both")
        assert scores.score[0] == pytest.approx(0.5)
        assert not scores.anomaly[0]


def test_unwatched_side_scores_zero_and_has_infinite_edge() -> None:
    scores = band_scores(np.array([-100.0]), np.array(0.0), np.array(1.0), "upper")
    assert scores.score.tolist() == [0.0]
    assert scores.lower.tolist() == [-np.inf]
    assert scores.side.tolist() == [0]


def test_extreme_values_score_one_without_warnings() -> None:
    scores = band_scores(np.array([1e308, -1e308, 8e154]), np.array(-1e308), np.array(1.0), "both")
    assert scores.score.tolist()[0] == 1.0
    assert scores.anomaly.tolist() == [True, False, True]
