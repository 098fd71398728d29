"""Change points: where a series' level or trend changes, with a confidence in [0, 1].

Method: the Chow test (G. C. Chow, "Tests of Equality Between Sets of Coefficients in Two
Linear Regressions", Econometrica 28(3), 1960). At each candidate split ``t`` a straight
line is fitted to the ``window`` points before it, one to the ``window`` points from it
on, and one to both together. If the level and the slope stay the same across ``t`` the
two separate lines explain the points no better than the joint one, beyond chance:

    F = ((S_joint - S_before - S_after) / 2) / ((S_before + S_after) / (2 window - 4))

follows an F distribution with 2 and ``2 window - 4`` degrees of freedom (S: sums of
squared residuals). The confidence of a change at ``t`` is that distribution's CDF at
``F``: 1 - the test's p-value. With two numerator degrees of freedom it has a closed form,
``1 - (1 + 2F/d)^(-d/2)``. A level shift moves the intercept, a change of trend the slope:
the test sees both. A point is a change point when its confidence reaches ``threshold``
and no split within ``window`` points of it is more confident (one change, one point).

Every split's sums come from cumulative sums of the series, so the whole series costs
O(n) time and memory. Splits closer than ``window`` to either end cannot be tested; their
confidence is 0. Pure numpy: no web or database imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import bottleneck as bn
import numpy as np

from anomaly_api.detectors.series import FloatArray
from anomaly_api.errors import InvalidInput

MIN_WINDOW = 3
"""Points on each side at least: two lines of two parameters need 2 x 3 - 4 = 2 degrees of
freedom left for the noise."""


@dataclass(frozen=True, slots=True)
class ChangePoints:
    """Per point: whether a change starts there, and the confidence of a change there."""

    is_change_point: np.ndarray
    confidence: FloatArray


def _segment_sse(
    sums: tuple[FloatArray, FloatArray, FloatArray], start: np.ndarray, width: int
) -> FloatArray:
    """Residual sum of squares of the least-squares line through each ``width`` points
    beginning at ``start`` (consecutive x positions), from cumulative sums of y, x*y, y^2."""
    cum_y, cum_xy, cum_yy = sums
    end = start + width
    sum_y = cum_y[end] - cum_y[start]
    # x measured from each segment's first point: sum((x - start) * y).
    sum_xy = (cum_xy[end] - cum_xy[start]) - start * sum_y
    sum_yy = cum_yy[end] - cum_yy[start]
    mean_x = (width - 1) / 2.0
    s_xx = width * (width * width - 1) / 12.0
    s_xy = sum_xy - mean_x * sum_y
    s_yy = sum_yy - sum_y * sum_y / width
    return np.asarray(np.maximum(s_yy - s_xy * s_xy / s_xx, 0.0), dtype=np.float64)


def change_points(values: FloatArray, window: int, threshold: float) -> ChangePoints:
    """The change points of ``values`` (evenly spaced) by the Chow test over ``window``
    points on each side, and every point's confidence (see the module docstring)."""
    y = np.asarray(values, dtype=np.float64)
    n = y.size
    if window < MIN_WINDOW:
        raise InvalidInput(f"window must be at least {MIN_WINDOW}, got {window}", field="window")
    if not 0.0 < threshold < 1.0:
        raise InvalidInput(f"threshold must lie in (0, 1), got {threshold}", field="threshold")
    confidence = np.zeros(n)
    if n < 2 * window or not np.all(np.isfinite(y)):
        return ChangePoints(np.zeros(n, dtype=bool), confidence)
    # Standardised first, so that the cumulative sums stay far from float64's precision.
    center = float(np.median(y))
    scale = float(np.median(np.abs(y - center))) or float(np.std(y)) or 1.0
    z = (y - center) / scale
    x = np.arange(n, dtype=np.float64)
    sums = tuple(np.concatenate([[0.0], np.cumsum(part)]) for part in (z, x * z, z * z))
    splits = np.arange(window, n - window + 1)
    before = _segment_sse(sums, splits - window, window)  # type: ignore[arg-type]
    after = _segment_sse(sums, splits, window)  # type: ignore[arg-type]
    joint = _segment_sse(sums, splits - window, 2 * window)  # type: ignore[arg-type]
    freedom = 2 * window - 4
    separate = before + after
    gain = np.maximum(joint - separate, 0.0)
    # A floor for perfectly clean data (a straight line, a step): no noise at all.
    floor = 1e-12 * max(float(np.max(joint)), 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        statistic = (gain / 2.0) / (np.maximum(separate, floor) / freedom)
        cdf = 1.0 - np.power(1.0 + 2.0 * statistic / freedom, -freedom / 2.0)
    cdf = np.where(gain <= floor, 0.0, np.nan_to_num(cdf, nan=0.0, posinf=1.0))
    confidence[splits] = np.clip(cdf, 0.0, 1.0)
    return ChangePoints(_local_peaks(confidence, window, threshold), confidence)


def _local_peaks(confidence: FloatArray, window: int, threshold: float) -> np.ndarray:
    """Points at or above ``threshold`` more confident than the ``window - 1`` points
    before them and at least as confident as the ``window - 1`` after (the first of a tie)."""
    n = confidence.size
    span = window - 1
    padded = np.concatenate([np.full(span, -1.0), confidence, np.full(span, -1.0)])
    trailing = bn.move_max(padded, span, min_count=1)  # trailing[j]: max of padded[j-span+1..j]
    before = trailing[span - 1 : span - 1 + n]  # max of the span points before each
    after = trailing[2 * span : 2 * span + n]  # max of the span points after each
    return np.asarray(
        (confidence >= threshold) & (confidence > before) & (confidence >= after), dtype=bool
    )
