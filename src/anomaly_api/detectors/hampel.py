"""``hampel``: each point against the rolling median of the points just before it."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

import bottleneck
import numpy as np

from anomaly_api.detectors.bands import (
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


def rolling_median_forecast(history: FloatArray, values: FloatArray, window: int) -> FloatArray:
    """For each of ``values``, the median of the ``window`` points before it.

    ``history`` holds the points that precede ``values[0]`` (at least ``window`` of
    them when available); only the past is used, so scoring is causal.

    A moving median over two heaps (bottleneck's ``move_median``): O(n log window) time
    and O(n + window) memory, where the median of every window as a rows x window array
    took n x window floats (8 GB for a million points and a window of 1,000). The
    values are the same, bit for bit (``tests/detectors/test_hampel.py``).
    """
    joined = np.concatenate([history[-window:], values])
    lead = joined.size - values.size
    if lead < window:  # too little history: pad with the first known value
        joined = np.concatenate([np.full(window - lead, joined[0]), joined])
    # move_median's item j is the median of joined[j - window + 1 : j + 1]: the window
    # before values[k] ends at joined index k + window - 1.
    medians = bottleneck.move_median(joined[: values.size + window - 1], window)
    forecast: FloatArray = np.asarray(medians[window - 1 :], dtype=np.float64)
    return forecast


def median_of(window: Iterable[float]) -> float:
    """The median as :func:`numpy.median` computes it (the mean of the two middle values
    of an even count), in float arithmetic."""
    ordered = sorted(window)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


class HampelContext(Context):
    """The last ``window`` values of the stream (the training data's last ones at first,
    the first of them repeated when the training data was shorter than the window)."""

    __slots__ = ("recent",)

    def __init__(self, recent: deque[float]) -> None:
        super().__init__()
        self.recent = recent

    def to_json(self) -> JsonDict:
        return {"recent": list(self.recent)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        recent = [float(value) for value in data.get("recent", [])]
        return cls(deque(recent, maxlen=len(recent) or None))

    def _copy(self) -> Self:
        return type(self)(self.recent.copy())


def padded_window(values: FloatArray, window: int) -> deque[float]:
    """The last ``window`` of ``values``, padded in front with the first (as
    :func:`rolling_median_forecast` pads a short history)."""
    tail = values[-window:].tolist()
    return deque([tail[0]] * (window - len(tail)) + tail, maxlen=window)


class HampelDetector(Detector):
    """A point is anomalous when it departs from the median of the ``window`` points
    just before it by more than ``threshold`` calibrated units of such departures.

    This is the Hampel identifier used causally (Hampel 1974; Pearson 2002, "Outliers
    in process modeling and identification"): the forecast is a rolling median, so it
    follows the *recent* level of the series rather than a global distribution. That
    matters for monitoring: a series that drifts slowly stays normal, while a sudden
    spike, drop or level shift is flagged as it happens. Because a median ignores a
    minority of outliers, a spike does not drag the forecast after it (one alarm, not
    a burst), and after a level shift the forecast catches up within half a window, so
    the alarm stops by itself instead of lasting until the next re-fit.

    **Calibration.** The unit is the ``quantile`` (99th percentile) of the one-step
    departures over the training data, at least their robust sigma
    (:func:`~anomaly_api.detectors.bands.tail_unit`): ``score > 0.5`` means *a departure
    more than* ``threshold`` *times what all but 1% of the training departures
    reached*, the same on every series (models fitted before this keep sigma units).
    **Learning from the stream**: the context is the last ``window`` values
    (:class:`HampelContext`), so each point is compared with the points just before it,
    whether they came in the training data, an earlier predict or the same batch. Every
    point joins the window, flagged or not: the median ignores a lone spike, and a level
    shift must be followed for the alarm to stop.

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
    fit_cost_us: ClassVar[float] = 0.3
    score_cost_us: ClassVar[float] = 0.3
    description: ClassVar[str] = (
        "Rolling median of the recent points ± k calibrated units (the training's "
        "99th-percentile one-step departure): "
        "follows the recent level, flags sudden spikes, drops and shifts."
    )
    cooldown_default: ClassVar[int] = 4 * 3600  # cross-validated (docs/detection.md)
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = HampelContext
    learns: ClassVar[str] = "every point joins the rolling window its median is taken over"
    parameters: ClassVar[tuple[Parameter, ...]] = (
        CALIBRATED_THRESHOLD,
        DIRECTION,
        Parameter(
            "window",
            int,
            6,
            "How many preceding points the rolling median covers.",
            minimum=1,
            maximum=1000,
        ),
        QUANTILE,
    )

    history_: FloatArray
    scale_: float
    unit_: float
    """``history_``: the training data's last ``window`` values, padded (the initial context)."""

    def _fit_core(self, series: Series) -> None:
        window = int(self.params["window"])
        values = series.values
        forecast = rolling_median_forecast(values[:1], values[1:], window)
        self.scale_ = robust_scale(values[1:] - forecast, 0.0)
        departures = values[1:] - forecast
        settled = departures[window - 1 :] if departures.size >= window else departures
        self.unit_ = tail_unit(settled, float(self.params["quantile"]), self.scale_)
        self.history_ = np.asarray(padded_window(values, window), dtype=np.float64)

    def initial_context(self) -> HampelContext:
        return HampelContext(padded_window(self.history_, int(self.params["window"])))

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        assert isinstance(context, HampelContext)
        window = int(self.params["window"])
        history = np.fromiter(context.recent, dtype=np.float64, count=len(context.recent))
        expected = rolling_median_forecast(history, values, window)
        context.recent.extend(values[-window:].tolist())
        half_width = np.array(self.params["threshold"] * self.unit_)
        return band_scores(values, expected, half_width, self.params["direction"])

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        point = self._peek_one(context, timestamp, value)
        assert isinstance(context, HampelContext)
        context.recent.append(float(value))
        return point

    def _peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, HampelContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        half_width = float(self.params["threshold"] * self.unit_)
        expected = median_of(context.recent)
        return band_point(float(value), expected, half_width, self.params["direction"])

    def fitted_scores(self, series: Series) -> Scores:
        context = HampelContext(padded_window(series.values[:1], int(self.params["window"])))
        return self.score_stream(context, series.timestamps, series.values)

    def state(self) -> JsonDict:
        return {"history": self.history_.tolist(), "scale": self.scale_, "unit": self.unit_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        # Models stored before streams existed kept an unpadded history when trained on
        # fewer points than the window; padding it now gives the same forecasts.
        history = np.asarray(state["history"], dtype=np.float64)
        self.history_ = np.asarray(
            padded_window(history, int(self.params["window"])), dtype=np.float64
        )
        self.scale_ = float(state["scale"])
        self.unit_ = float(state.get("unit", self.scale_))  # older fits: sigma units
