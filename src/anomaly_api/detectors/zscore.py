"""``zscore``: the original service's model, with both sides flagged by default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from anomaly_api.detectors.bands import Scores, band_scores
from anomaly_api.detectors.base import Detector
from anomaly_api.detectors.params import DIRECTION, THRESHOLD, JsonDict, Parameter
from anomaly_api.detectors.series import FloatArray, Series


class ZScoreDetector(Detector):
    """Mean ± ``threshold`` population standard deviations of the training values.

    This is what the original service fitted (there, upper side only). A point is
    anomalous when it lies *strictly* more than ``threshold`` standard deviations from
    the mean, on both sides by default. Timestamps are not used.

    A constant training series (zero spread; think of an error counter that is always
    0) is valid: its band has zero width, so any value that differs from the constant is
    anomalous with score 1, and the constant itself scores 0.

    Parameters
    ----------
    threshold : float, default 3.0
        k in mean ± k·std.
    direction : {"both", "upper", "lower"}, default "both"
        Which side(s) of the band count as anomalies.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> series = Series.from_arrays(np.arange(500), rng.normal(50.0, 2.0, 500))
    >>> detector = ZScoreDetector({"threshold": 3.0}).fit(series)
    >>> scores = detector.score([500, 501, 502], [50.0, 59.0, 41.0])
    >>> scores.anomaly.tolist(), scores.side.tolist()
    ([False, True, True], [0, 1, -1])
    """

    name: ClassVar[str] = "zscore"
    description: ClassVar[str] = (
        "Mean ± k standard deviations of the training values (the original model), "
        "two-sided by default."
    )
    min_points: ClassVar[int] = 5
    parameters: ClassVar[tuple[Parameter, ...]] = (THRESHOLD, DIRECTION)
    fixed_band_in_time: ClassVar[bool] = True

    mean_: float
    std_: float

    def _fit_core(self, series: Series) -> None:
        values = series.values
        if bool(np.all(values == values[0])):
            # Exact, so that a constant series gives a zero-width band around its own value
            # rather than one a rounding error wide.
            self.mean_, self.std_ = float(values[0]), 0.0
        else:
            self.mean_, self.std_ = float(values.mean()), float(values.std())

    def _score_core(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        half_width = np.array(self.params["threshold"] * self.std_)
        return band_scores(values, np.array(self.mean_), half_width, self.params["direction"])

    def _point_band(self, timestamp: float) -> tuple[float, float]:
        return self.mean_, float(self.params["threshold"] * self.std_)

    def state(self) -> JsonDict:
        return {"mean": self.mean_, "std": self.std_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.mean_ = float(state["mean"])
        self.std_ = float(state["std"])
