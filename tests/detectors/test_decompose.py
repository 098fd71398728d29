"""The seasonal decomposition: periods found from the data (or none), expected values
that follow the pattern, and spikes that do not drag their neighbours along."""

from __future__ import annotations

import numpy as np

from anomaly_api.detectors.decompose import decompose, deseasonalized, detect_period

MONTHLY = [  # Azure's v1.1 example (AZURE_COMPAT.md, F1)
    826, 799, 890, 900, 961, 935, 894, 855, 809, 810, 766, 805,
    821, 773, 883, 898, 957, 924, 881, 837, 784, 791, 760, 802,
    828, 1030, 889, 902, 969, 947, 908, 867, 815, 812, 773, 813,
    834, 782, 892, 903, 966, 937, 896, 858, 817, 827, 797, 843,
]  # fmt: skip


def test_periods_are_found_in_the_data() -> None:
    rng = np.random.default_rng(3)
    daily = 10 * np.sin(np.arange(24 * 20) * 2 * np.pi / 24) + rng.normal(0, 1, 24 * 20)
    assert detect_period(daily) == 24
    assert detect_period(np.array(MONTHLY, dtype=float)) == 12
    assert detect_period(rng.normal(0, 1, 500)) == 0
    assert detect_period(np.arange(100.0)) == 0  # a trend is not a period
    assert detect_period(np.ones(30)) == 0


def test_expected_values_follow_the_pattern_and_ignore_a_spike() -> None:
    values = np.array(MONTHLY, dtype=float)
    fitted = decompose(values, None)
    assert fitted.period == 12
    residual = np.abs(values - fitted.expected)
    assert int(np.argmax(residual)) == 25  # the spike of 1030
    # Its neighbours are not dragged along: each within 3 robust sigmas.
    assert residual[24] < 3 * fitted.unit and residual[26] < 3 * fitted.unit
    assert 0 < fitted.unit < 20


def test_a_given_period_is_used_and_zero_means_none() -> None:
    values = np.array(MONTHLY, dtype=float)
    assert decompose(values, 0).period == 0
    assert decompose(values, 6).period == 6
    flat = deseasonalized(values, 12)
    assert flat.std() < 0.6 * values.std()
    assert deseasonalized(values, 0) is values
