"""``robust``: median ± k robust standard deviations."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from anomaly_api.detectors.bands import PointScore, Scores, band_point, band_scores, robust_scale
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import DIRECTION, THRESHOLD, JsonDict, Parameter
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput


class RobustDetector(Detector):
    """Median ± ``threshold`` scaled MADs of the training values.

    The zscore band is widened by the very outliers it should catch: one spike of
    1,000 in 100 points of ~10 moves the mean by 10 and the standard deviation by ~100.
    The median and the median absolute deviation (scaled by 1.4826 to estimate a
    normal sigma) ignore up to half the data being outliers, so a training set that
    contains incidents still gives a tight band (Rousseeuw & Croux 1993; Iglewicz &
    Hoaglin 1993, whose modified z-score this is). See :func:`robust_scale` for series
    whose MAD is 0. Timestamps are not used.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> values = rng.normal(50.0, 2.0, 500)
    >>> values[:25] = 500.0  # 5% incidents in the training data
    >>> detector = RobustDetector().fit(Series.from_arrays(np.arange(500), values))
    >>> detector.score([500, 501], [50.0, 60.0]).anomaly.tolist()
    [False, True]
    """

    name: ClassVar[str] = "robust"
    description: ClassVar[str] = (
        "Median ± k scaled MADs of the training values: outliers in the training data "
        "don't widen the band."
    )
    min_points: ClassVar[int] = 5
    parameters: ClassVar[tuple[Parameter, ...]] = (THRESHOLD, DIRECTION)

    median_: float
    scale_: float

    def _fit_core(self, series: Series) -> None:
        self.median_ = float(np.median(series.values))
        self.scale_ = robust_scale(series.values, self.median_)

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        half_width = np.array(self.params["threshold"] * self.scale_)
        return band_scores(values, np.array(self.median_), half_width, self.params["direction"])

    def observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        half_width = float(self.params["threshold"] * self.scale_)
        return band_point(float(value), self.median_, half_width, self.params["direction"])

    def peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        return self.observe_one(context, timestamp, value)

    def state(self) -> JsonDict:
        return {"median": self.median_, "scale": self.scale_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.median_ = float(state["median"])
        self.scale_ = float(state["scale"])
