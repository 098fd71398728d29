"""``hampel``: each point against the rolling median of the points just before it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from anomaly_api.detectors.bands import Scores, band_scores, robust_scale
from anomaly_api.detectors.base import Detector
from anomaly_api.detectors.params import DIRECTION, THRESHOLD, JsonDict, Parameter
from anomaly_api.detectors.series import FloatArray, Series


def rolling_median_forecast(history: FloatArray, values: FloatArray, window: int) -> FloatArray:
    """For each of ``values``, the median of the ``window`` points before it.

    ``history`` holds the points that precede ``values[0]`` (at least ``window`` of
    them when available); only the past is used, so scoring is causal.
    """
    joined = np.concatenate([history[-window:], values])
    lead = joined.size - values.size
    if lead < window:  # too little history: pad with the first known value
        joined = np.concatenate([np.full(window - lead, joined[0]), joined])
    windows = sliding_window_view(joined, window)[: values.size]
    forecast: FloatArray = np.median(windows, axis=1)
    return forecast


class HampelDetector(Detector):
    """A point is anomalous when it departs from the median of the ``window`` points
    just before it by more than ``threshold`` robust sigmas of such departures.

    This is the Hampel identifier used causally (Hampel 1974; Pearson 2002, "Outliers
    in process modeling and identification"): the forecast is a rolling median, so it
    follows the *recent* level of the series rather than a global distribution. That
    matters for monitoring: a series that drifts slowly stays normal, while a sudden
    spike, drop or level shift is flagged as it happens. Because a median ignores a
    minority of outliers, a spike does not drag the forecast after it (one alarm, not
    a burst), and after a level shift the forecast catches up within half a window, so
    the alarm stops by itself instead of lasting until the next re-fit.

    The sigma is the robust scale of the one-step departures over the training data.
    Scoring a batch treats it as the continuation of the training data: each point is
    compared with the points before it in the batch (or, for the first ones, the end of
    the training data). A single predict is compared with the training data's end.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> walk = np.cumsum(rng.normal(0.0, 1.0, 600))  # wanders far; steps are ~1
    >>> detector = HampelDetector().fit(Series.from_arrays(np.arange(600), walk))
    >>> last = float(walk[-1])
    >>> detector.score([600, 601], [last + 1.0, last + 30.0]).anomaly.tolist()
    [False, True]
    """

    name: ClassVar[str] = "hampel"
    description: ClassVar[str] = (
        "Rolling median of the recent points ± k robust sigmas of one-step departures: "
        "follows the recent level, flags sudden spikes, drops and shifts."
    )
    min_points: ClassVar[int] = 10
    parameters: ClassVar[tuple[Parameter, ...]] = (
        replace(
            THRESHOLD,
            default=4.0,
            description="Robust sigmas of the one-step departure a point may lie from the "
            "rolling median.",
        ),
        DIRECTION,
        Parameter(
            "window",
            int,
            6,
            "How many preceding points the rolling median covers.",
            minimum=1,
            maximum=1000,
        ),
    )

    history_: FloatArray
    scale_: float

    def _fit_core(self, series: Series) -> None:
        window = int(self.params["window"])
        values = series.values
        forecast = rolling_median_forecast(values[:1], values[1:], window)
        self.scale_ = robust_scale(values[1:] - forecast, 0.0)
        self.history_ = values[-window:].copy()

    def _score_core(self, timestamps: FloatArray, values: FloatArray) -> Scores:
        expected = rolling_median_forecast(self.history_, values, int(self.params["window"]))
        half_width = np.array(self.params["threshold"] * self.scale_)
        return band_scores(values, expected, half_width, self.params["direction"])

    def fitted_scores(self, series: Series) -> Scores:
        replay = copy.copy(self)
        replay.history_ = series.values[:1]
        return replay.score(series.timestamps, series.values)

    def state(self) -> JsonDict:
        return {"history": self.history_.tolist(), "scale": self.scale_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.history_ = np.asarray(state["history"], dtype=np.float64)
        self.scale_ = float(state["scale"])
