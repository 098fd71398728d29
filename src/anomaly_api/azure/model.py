"""Entire, last-point and change-point detection for Azure's univariate operations.

The series, on its grid with the gaps filled (:mod:`.grid`), is decomposed by
:mod:`anomaly_api.detectors.decompose` (period found from the data when Azure's ``period``
is absent; level and seasonal part; robust spread of the rest). Then:

- **Margins** are ``3 x (100 - sensitivity)`` robust standard deviations on each side:
  proportional to ``100 - sensitivity`` as Azure's margins were (1% of the expected value
  at 99, 5% at 95), and the classic three sigmas at the default of 99. (Azure's own
  default band was narrower: it flagged 14 of the 47 points of its daily sample.)
- **Anomalies** are the points outside the band, at most ``maxAnomalyRatio`` of them (the
  farthest out, in margins, are kept). ``severity`` is ``1 - margin / |value - expected|``
  for an anomaly (0 at the band's edge, towards 1 far out), 0 otherwise.
- **Last point**: the decomposition of every point before it; the level is the mean of
  the period before it (the median of the 7 points before it without a period), plus its
  phase's seasonal part.
- **Change points**: :func:`anomaly_api.detectors.changepoint.change_points` (the Chow
  test) over ``stableTrendWindow`` points each side, on the series with its seasonal part
  removed when it has a period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomaly_api.azure.grid import fill
from anomaly_api.azure.request import AzureRequest
from anomaly_api.detectors.changepoint import change_points
from anomaly_api.detectors.decompose import (
    LEVEL_WINDOW,
    decompose,
    deseasonalized,
    detect_period,
)
from anomaly_api.detectors.series import FloatArray, IntArray

SIGMAS_PER_STEP = 3.0
"""Band half-width per step of ``100 - sensitivity``, in robust standard deviations: three
sigmas at the default sensitivity of 99."""
DEFAULT_GRANULARITY_WINDOW = {
    "daily": 28,
    "minutely": 1440,
    "hourly": 168,
    "weekly": 12,
    "monthly": 12,
    "yearly": 12,
    "secondly": 1440,
    "microsecond": 1000,
    "none": 1440,
}
"""Azure's points per granularity, for ``suggestedWindow`` without a period."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request's series on its grid: the values (gaps filled) and where each point sent
    lies among them."""

    filled: FloatArray
    where: IntArray


def prepare(request: AzureRequest) -> Prepared:
    """The request's series on its grid, the gaps filled as ``imputeMode`` says."""
    if request.slots is None:
        return Prepared(request.values, np.arange(request.values.size, dtype=np.int64))
    filled, where = fill(request.values, request.slots, request.impute, request.impute_fixed)
    return Prepared(filled, where)


def half_width(sensitivity: float) -> float:
    """Band half-width in robust standard deviations for an Azure ``sensitivity``."""
    return SIGMAS_PER_STEP * (100.0 - sensitivity)


def _decide(
    values: FloatArray, expected: FloatArray, margin: FloatArray, max_ratio: float | None
) -> tuple[np.ndarray, np.ndarray, FloatArray]:
    """Positive and negative anomalies (at most ``max_ratio`` of the points), severities."""
    distance = values - expected
    with np.errstate(divide="ignore", invalid="ignore"):
        outside = np.where(
            margin > 0, np.abs(distance) / margin, np.where(distance != 0, np.inf, 0)
        )
    anomalous = outside > 1.0
    if max_ratio is not None:
        allowed = math.floor(max_ratio * values.size)
        if np.count_nonzero(anomalous) > allowed:
            keep = np.argsort(-outside, kind="stable")[:allowed]
            anomalous = np.zeros_like(anomalous)
            anomalous[keep] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        severity = np.where(anomalous, 1.0 - 1.0 / outside, 0.0)
    return anomalous & (distance > 0), anomalous & (distance < 0), np.clip(severity, 0.0, 1.0)


def entire(request: AzureRequest) -> dict[str, Any]:
    """Azure's entire-series answer (``severity`` included), one entry per point sent."""
    prepared = prepare(request)
    fitted = decompose(prepared.filled, request.period)
    expected = fitted.expected[prepared.where]
    margin = np.full(expected.size, half_width(request.sensitivity) * fitted.unit)
    positive, negative, severity = _decide(request.values, expected, margin, request.max_ratio)
    return {
        "period": fitted.period,
        "expectedValues": expected,
        "upperMargins": margin,
        "lowerMargins": margin,
        "isAnomaly": positive | negative,
        "isNegativeAnomaly": negative,
        "isPositiveAnomaly": positive,
        "severity": severity,
    }


def suggested_window(period: int, granularity: str) -> int:
    """Azure's ``suggestedWindow``: four periods and one point, or its points per
    granularity and one."""
    return 4 * period + 1 if period else DEFAULT_GRANULARITY_WINDOW[granularity] + 1


def last(request: AzureRequest) -> dict[str, Any]:
    """Azure's last-point answer: the last point judged by the model of those before it."""
    prepared = prepare(request)
    history = prepared.filled[:-1]
    fitted = decompose(history, request.period)
    period = fitted.period
    recent = history[-period:] if period >= 2 else history[-LEVEL_WINDOW:]
    level = float(np.mean(recent)) if period >= 2 else float(np.median(recent))
    position = prepared.filled.size - 1
    seasonal = float(fitted.seasonal[position % period]) if period >= 2 else 0.0
    expected = level + seasonal
    margin = half_width(request.sensitivity) * fitted.unit
    value = float(request.values[-1])
    positive, negative, severity = _decide(
        np.array([value]), np.array([expected]), np.array([margin]), None
    )
    return {
        "period": period,
        "suggestedWindow": suggested_window(period, request.granularity),
        "expectedValue": expected,
        "upperMargin": margin,
        "lowerMargin": margin,
        "isAnomaly": bool(positive[0] or negative[0]),
        "isNegativeAnomaly": bool(negative[0]),
        "isPositiveAnomaly": bool(positive[0]),
        "severity": float(severity[0]),
    }


def changepoint(request: AzureRequest) -> dict[str, Any]:
    """Azure's change-point answer, one entry per point sent."""
    prepared = prepare(request)
    series = prepared.filled
    period = detect_period(series) if request.period is None else request.period
    series = deseasonalized(series, period)
    found = change_points(series, request.window, request.threshold)
    return {
        "period": period,
        "isChangePoint": found.is_change_point[prepared.where],
        "confidenceScores": found.confidence[prepared.where],
    }
