from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import RobustDetector, Series, ZScoreDetector, robust_scale


def test_outliers_in_training_do_not_widen_the_band() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 1.0, 200)
    values[::20] = 1_000.0  # 5% incidents
    series = Series.from_arrays(np.arange(200), values)
    probe = [0], [16.0]
    assert RobustDetector().fit(series).score(*probe).anomaly[0]
    assert not ZScoreDetector().fit(series).score(*probe).anomaly[0]


def test_mostly_constant_counter_still_has_a_band() -> None:
    values = np.zeros(100)
    values[::10] = 1.0
    detector = RobustDetector().fit(Series.from_arrays(np.arange(100), values))
    assert detector.scale_ > 0
    assert detector.score([0, 0], [0.3, 50.0]).anomaly.tolist() == [False, True]


def test_robust_scale_matches_sigma_for_normal_data() -> None:
    values = np.random.default_rng(1).normal(0.0, 3.0, 100_000)
    assert robust_scale(values) == pytest.approx(3.0, rel=0.02)
