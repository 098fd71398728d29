"""``robust``: median ± k calibrated units (the training's 99th-percentile distance)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from anomaly_api.detectors.bands import (
    OUTLIER_CUT,
    PointScore,
    Scores,
    band_point,
    band_scores,
    robust_scale,
    tail_unit,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import (
    CALIBRATED_THRESHOLD,
    DIRECTION,
    QUANTILE,
    JsonDict,
    Parameter,
)
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput


class RobustDetector(Detector):
    """Median ± ``threshold`` calibrated units of the training values.

    The zscore band is widened by the very outliers it should catch: one spike of
    1,000 in 100 points of ~10 moves the mean by 10 and the standard deviation by ~100.
    The median and the median absolute deviation (scaled by 1.4826 to estimate a
    normal sigma) ignore up to half the data being outliers, so a training set that
    contains incidents still gives a tight band (Rousseeuw & Croux 1993; Iglewicz &
    Hoaglin 1993, whose modified z-score this is). See :func:`robust_scale` for series
    whose MAD is 0. Timestamps are not used.

    **Calibration.** The unit is not the MAD's sigma but the ``quantile`` (99th
    percentile) of the training values' distances from the median, leaving out those
    farther than 3.5 sigmas (training incidents, Iglewicz & Hoaglin's outliers) and at
    least one sigma (:func:`~anomaly_api.detectors.bands.tail_unit`): ``score`` is
    ``d² / (1 + d²)`` of the distance ``d`` in band half-widths, so ``score > 0.5``
    means *farther from the median than* ``threshold`` *times the distance all but 1%
    of the (non-outlying) training points kept*, on a heavy-tailed series as on a
    normal one. Models fitted before this
    (their state has no ``unit``) keep their sigma units.

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
    fit_cost_us: ClassVar[float] = 0.3
    score_cost_us: ClassVar[float] = 0.1
    description: ClassVar[str] = (
        "Median ± k calibrated units (the training values' 99th-percentile distance from "
        "it): outliers in the training data don't move the median."
    )
    cooldown_default: ClassVar[int] = 4 * 3600  # cross-validated (docs/detection.md)
    min_points: ClassVar[int] = 5
    parameters: ClassVar[tuple[Parameter, ...]] = (
        CALIBRATED_THRESHOLD,
        DIRECTION,
        QUANTILE,
    )

    median_: float
    scale_: float
    unit_: float

    def _fit_core(self, series: Series) -> None:
        self.median_ = float(np.median(series.values))
        self.scale_ = robust_scale(series.values, self.median_)
        quantile = float(self.params["quantile"])
        residuals = series.values - self.median_
        # The outlier rule needs a MAD: when more than half the values are equal (a
        # counter that is mostly 0), the rest is the series' normal variation.
        cut = OUTLIER_CUT if np.median(np.abs(residuals)) > 0 else None
        # Its outlier cut already keeps training incidents out of the unit; the folds
        # preferred the plain quantile here (docs/detection.md).
        self.unit_ = tail_unit(residuals, quantile, self.scale_, outlier_cut=cut, few_points=False)

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        half_width = np.array(self.params["threshold"] * self.unit_)
        return band_scores(values, np.array(self.median_), half_width, self.params["direction"])

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        half_width = float(self.params["threshold"] * self.unit_)
        return band_point(float(value), self.median_, half_width, self.params["direction"])

    def _peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        return self._observe_one(context, timestamp, value)

    def state(self) -> JsonDict:
        return {"median": self.median_, "scale": self.scale_, "unit": self.unit_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.median_ = float(state["median"])
        self.scale_ = float(state["scale"])
        self.unit_ = float(state.get("unit", self.scale_))  # older fits: sigma units
