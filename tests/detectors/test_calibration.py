"""Calibrated scores: one threshold means the same on series of any distribution."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detectors import DETECTORS, Series
from anomaly_api.detectors.bands import tail_quantile

CALIBRATED = ["robust", "seasonal", "hampel", "adaptive", "spread", "trend", "pattern"]


def draws(kind: str, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return 100 + rng.normal(0, 5, size)
    if kind == "heavy":  # Student's t with 2 degrees of freedom: no variance at all
        return 100 + 5 * rng.standard_t(2, size)
    return 100 + rng.uniform(-5, 5, size)  # light tails


@pytest.mark.parametrize("name", CALIBRATED)
def test_the_flag_rate_on_normal_behaviour_is_small_whatever_the_distribution(name: str) -> None:
    """The share of flagged points of a series behaving as in training stays under 1%
    for normal, heavy-tailed and light-tailed noise alike; a sigma band (zscore) flags
    several times more of the heavy-tailed series than of the normal one."""
    rates = {}
    for kind in ("normal", "heavy", "light"):
        times = 300 * np.arange(24_000)
        values = draws(kind, times.size, seed=3)
        detector = DETECTORS[name]().fit(Series.from_arrays(times[:4000], values[:4000]))
        rates[kind] = float(detector.score(times[4000:], values[4000:]).anomaly.mean())
    # robust leaves training points beyond 3.5 sigmas out of its calibration (they are
    # incidents by its rule), so a series whose normal tail is that heavy flags more.
    assert max(rates.values()) < (0.05 if name == "robust" else 0.01), rates
    zscore = {}
    for kind in ("normal", "heavy"):
        times = 300 * np.arange(24_000)
        values = draws(kind, times.size, seed=3)
        detector = DETECTORS["zscore"]().fit(Series.from_arrays(times[:4000], values[:4000]))
        zscore[kind] = float(detector.score(times[4000:], values[4000:]).anomaly.mean())
    assert zscore["heavy"] > 3 * zscore["normal"]


@pytest.mark.parametrize("name", ["robust", "seasonal", "hampel"])
def test_a_model_stored_before_calibration_keeps_its_sigma_units(name: str) -> None:
    times = 300 * np.arange(3000)
    values = draws("heavy", times.size, seed=4)
    detector = DETECTORS[name]({"threshold": 4.0}).fit(Series.from_arrays(times, values))
    state = detector.state()
    assert state["unit"] >= state["scale"] > 0
    old = {key: value for key, value in state.items() if key != "unit"}
    restored = DETECTORS[name].from_state(detector.params, old)
    assert restored.unit_ == restored.scale_  # type: ignore[attr-defined]
    band = restored.score([times[-1] + 300], [100.0])
    half_width = (band.upper[0] - band.lower[0]) / 2
    assert half_width == pytest.approx(4.0 * state["scale"])  # 4 sigmas, as fitted then


@pytest.mark.parametrize("name", ["seasonal", "hampel", "adaptive"])
def test_incidents_in_a_short_training_series_do_not_set_the_band(name: str) -> None:
    """120 points with two incidents: their 99th percentile would be an incident's size
    (a band 75 sigmas wide); the unit comes from the 10th largest deviation instead."""
    rng = np.random.default_rng(12)
    times = 3600 * np.arange(140)
    values = 100 + rng.normal(0, 1, times.size)
    values[[30, 80]] = 150.0
    detector = DETECTORS[name]().fit(Series.from_arrays(times[:120], values[:120]))
    spike = detector.score([times[130]], [108.0])  # 8 sigmas: an incident again
    assert spike.anomaly[0], name
    assert not detector.score(times[120:], values[120:]).anomaly.any()
    plain = np.quantile(np.abs(values[:120] - 100), 0.99)
    assert plain > 30 and tail_quantile(np.abs(values[:120] - 100), 0.99) < 5
