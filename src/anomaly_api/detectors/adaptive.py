"""``adaptive``: deviations from the recent, seasonal level, judged against the past."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Self

import numpy as np

from anomaly_api.detectors.bands import (
    JUST_ABOVE_HALF,
    PointScore,
    Scores,
    consistent_score,
    robust_scale,
    tail_quantile,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.hampel import median_of, rolling_median_forecast
from anomaly_api.detectors.params import DIRECTION, THRESHOLD, JsonDict, Parameter
from anomaly_api.detectors.seasonal import PERIOD, SeasonalDetector
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

# A relative deviation this large is "infinitely" unusual; capping keeps inf/inf out.
_HUGE = 1e12
# Deviations smaller than this share of the series' own spread are not told apart: a
# noise-free synthetic series would otherwise call a rounding error an incident.
_SCALE_FLOOR = 0.01


def trailing_mean(history: FloatArray, values: FloatArray, window: int) -> FloatArray:
    """For each of ``values``, the mean of it and the ``window - 1`` points before it.

    Each window is summed from its oldest point to its newest, whatever else is in the
    batch, so one point scored alone and the same point inside a batch get the same bits
    (a running cumulative sum would depend on where the batch began). That is ``window``
    passes over the batch: the parameter's maximum keeps it bounded.

    >>> trailing_mean(np.array([1.0, 2.0]), np.array([3.0, 4.0]), 3).tolist()
    [2.0, 3.0]
    """
    joined = np.concatenate([history[-(window - 1) :] if window > 1 else history[:0], values])
    lead = joined.size - values.size
    # Zeros in front of a short history add nothing (0 + x is x exactly).
    padded = np.concatenate([np.zeros(window - 1 - lead), joined])
    size = values.size
    total = padded[:size].copy()
    for offset in range(1, window):
        total += padded[offset : offset + size]
    counts = np.minimum(lead + np.arange(1, size + 1), window)
    means: FloatArray = total / counts
    return means


class AdaptiveContext(Context):
    """What scoring the next point needs of the points before it: the last ``window``
    residuals (the level is their median) and the last ``rate_window - 1`` deviations
    (the sustained part averages them with the new one). Plain lists of floats: a
    single point is scored from them in float arithmetic."""

    __slots__ = ("deviations", "residuals")

    def __init__(self, residuals: list[float], deviations: list[float]) -> None:
        super().__init__()
        self.residuals = residuals
        self.deviations = deviations

    def to_json(self) -> JsonDict:
        return {"residuals": list(self.residuals), "deviations": list(self.deviations)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        # Contexts saved before incidents were separate from the band also hold
        # "recent_times" and "recent_levels" (how far the band was stretched): ignored.
        def floats(key: str) -> list[float]:
            return [
                float(item) for item in np.asarray(data.get(key, []), dtype=np.float64).reshape(-1)
            ]

        return cls(floats("residuals"), floats("deviations"))

    def _copy(self) -> Self:
        return type(self)(list(self.residuals), list(self.deviations))


class AdaptiveDetector(Detector):
    """How far a point strays from the recent level of its series, compared with how far
    points strayed in the reference window, and only news counts.

    Global bands (``zscore``, ``robust``) judge a point against everything the series
    ever did, so they miss an incident that stays within the usual range and cry wolf
    on every daily peak. This detector follows the NAB evaluation's lesson (Lavin &
    Ahmad 2015; Ahmad et al. 2017): a good alarm is *early*, *rare*, and *calibrated per
    series*. It combines four established pieces:

    1. **Expected value** = the seasonal profile (the ``seasonal`` detector's daily or
       weekly medians, STL's seasonal sub-series) plus the rolling median of the last
       ``window`` residuals (a causal Hampel filter, Pearson 2002). It follows the
       current level, so drifts are normal and a spike does not drag it along.
    2. **Calibration by the series' own history**: the deviation is measured in units of
       the ``quantile`` (99th percentile) of the deviations seen in the training window,
       as NAB's anomaly likelihood normalises raw scores by their own history. A noisy
       series and a smooth one get comparable scores without per-series tuning.
    3. **Sustained change**: the mean deviation of the last ``rate_window`` points, in
       units of its largest value in training, catches incidents made of many ordinary-
       looking points (spikes coming more often), which no single point reveals.
    4. **Never seen before**: how far a value lies beyond the range of the training
       values, in units of ``range_margin`` times that range (the out-of-bounds rule of
       monitoring systems, with bounds learnt from the window). A slow climb to a level
       the series never reached moves no point far from its predecessors, so parts 1-3
       see nothing; a temperature that leaves its two-week range does.
    The band is ``threshold`` units wide, always: it is the model's expectation, never
    widened to silence alerts. One alert per incident is the incident marker's work
    (:mod:`anomaly_api.detectors.incidents`): every point outside the band is anomalous,
    and only the first of an incident (or one of another side, or markedly worse, or
    after a quiet ``cooldown_seconds``) is ``new``.

    **Learning from the stream**: parts 1 and 3 follow the stream point by point
    (:class:`AdaptiveContext`: the last residuals and deviations), whether the points
    came in a batch or one predict at a time; the seasonal profile, the scale and the
    units are what the fit estimated, until the next fit.

    ``expected`` is the level; ``lower``/``upper`` bound what the point may be (its own
    band, cut to the range part's bounds where those are tighter). A point inside them
    can still be anomalous through the sustained-change part (3).

    Examples
    --------
    >>> rng = np.random.default_rng(11)
    >>> minutes = np.arange(3000) * 300
    >>> values = 50 + rng.normal(0.0, 1.0, 3000)
    >>> detector = AdaptiveDetector().fit(Series.from_arrays(minutes[:2000], values[:2000]))
    >>> values[2500] += 25.0  # a spike
    >>> values[2501] += 20.0  # the next point: the same incident
    >>> values[2600] -= 20.0  # a dip, eight hours later: another one
    >>> scores = detector.score(minutes[2000:], values[2000:])
    >>> flagged = np.flatnonzero(scores.anomaly) + 2000
    >>> flagged.tolist()[:3], flagged.tolist()[-1]  # the spikes' after-effect lasts a while
    ([2500, 2501, 2502], 2600)
    >>> scores.incident[[500, 501, 502, 600]].tolist()  # new, ongoing, ongoing, new
    [1, 2, 2, 1]
    """

    name: ClassVar[str] = "adaptive"
    fit_cost_us: ClassVar[float] = 1.2
    score_cost_us: ClassVar[float] = 0.5
    description: ClassVar[str] = (
        "Deviation from the recent seasonal level in units of the series' own past "
        "deviations. The best detector on NAB data here."
    )
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = AdaptiveContext
    learns: ClassVar[str] = (
        "every point moves the rolling level and the sustained-change average; the "
        "profile and units change when it is fitted again"
    )
    parameters: ClassVar[tuple[Parameter, ...]] = (
        replace(
            THRESHOLD,
            default=1.5,
            description="Band half-width, in units of the reference deviation (the quantile "
            "below).",
        ),
        DIRECTION,
        PERIOD,
        Parameter(
            "window", int, 3, "Residuals the rolling-median level covers.", minimum=1, maximum=1000
        ),
        Parameter(
            "quantile",
            float,
            0.99,
            "Quantile of the training deviations that serves as the unit of deviation.",
            minimum=0.5,
            maximum=0.9999,
        ),
        Parameter(
            "rate_window",
            int,
            6,  # cross-validated (docs/detection.md)
            "Points averaged for the sustained-change part.",
            minimum=1,
            maximum=1000,
        ),
        Parameter(
            "range_margin",
            float,
            0.1,
            "Share of the training range that counts as one unit of deviation beyond it "
            "(0: no range part).",
            minimum=0.0,
            maximum=1000.0,
        ),
    )

    seasonal_: SeasonalDetector
    scale_: float
    unit_: float
    rate_unit_: float
    low_: float
    high_: float
    residuals_: FloatArray
    deviations_: FloatArray

    def _fit_core(self, series: Series) -> None:
        window = int(self.params["window"])
        self.seasonal_ = SeasonalDetector({"period": self.params["period"]}).fit(series)
        times = series.timestamps.astype(np.float64)
        residuals = series.values - self.seasonal_.expected(times)
        departures = residuals[1:] - rolling_median_forecast(residuals[:1], residuals[1:], window)
        settled = departures[window - 1 :] if departures.size >= window else departures
        floor = _SCALE_FLOOR * robust_scale(series.values)
        self.scale_ = max(robust_scale(settled, 0.0), floor)
        deviations = self._deviations(departures)
        self.unit_ = tail_quantile(deviations, self.params["quantile"])
        rate_window = int(self.params["rate_window"])
        rates = trailing_mean(deviations[:0], deviations, rate_window)
        # Only full windows: the first means average fewer points and would overstate.
        full = rates[rate_window - 1 :] if rates.size >= rate_window else rates
        self.rate_unit_ = float(full.max())
        self.low_, self.high_ = float(series.values.min()), float(series.values.max())
        self.residuals_ = residuals[-window:].copy()
        keep = int(self.params["rate_window"]) - 1
        self.deviations_ = (
            deviations[max(deviations.size - keep, 0) :].copy() if keep else deviations[:0]
        )

    def initial_context(self) -> AdaptiveContext:
        return AdaptiveContext(self.residuals_.tolist(), self.deviations_.tolist())

    def _deviations(self, departures: FloatArray) -> FloatArray:
        """|departure| on the watched side(s), in units of the robust scale."""
        direction = self.params["direction"]
        watched = np.abs(departures)
        if direction == "upper":
            watched = np.maximum(departures, 0.0)
        elif direction == "lower":
            watched = np.maximum(-departures, 0.0)
        return _ratio(watched, self.scale_)

    def _relative(self, deviations: FloatArray, rates: FloatArray) -> FloatArray:
        """The larger of the point and sustained parts, in units of their references."""
        return np.minimum(
            np.maximum(_ratio(deviations, self.unit_), _ratio(rates, self.rate_unit_)), _HUGE
        )

    def _range_unit(self) -> float:
        """One unit of excess beyond the training range (inf: the range part is off)."""
        margin = float(self.params["range_margin"])
        if margin <= 0 or not np.isfinite(self.high_ - self.low_):
            return np.inf
        return margin * (self.high_ - self.low_)

    def _beyond_range(self, values: FloatArray) -> FloatArray:
        """How far each value lies outside the training range on the watched side(s), in
        range units; 0 inside it."""
        direction = self.params["direction"]
        above = np.maximum(values - self.high_, 0.0)
        below = np.maximum(self.low_ - values, 0.0)
        excess = above if direction == "upper" else below if direction == "lower" else above + below
        unit = self._range_unit()
        if np.isinf(unit):
            return np.zeros(values.shape, dtype=np.float64)
        return np.minimum(_ratio(excess, unit), _HUGE)

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        assert isinstance(context, AdaptiveContext)
        window = int(self.params["window"])
        rate_window = int(self.params["rate_window"])
        seasonal = self.seasonal_.expected(timestamps)
        residuals = values - seasonal
        level = rolling_median_forecast(_array(context.residuals), residuals, window)
        departures = residuals - level
        deviations = self._deviations(departures)
        rates = trailing_mean(_array(context.deviations), deviations, rate_window)
        relative = np.maximum(self._relative(deviations, rates), self._beyond_range(values))
        band = float(self.params["threshold"])
        self._advance(context, residuals, deviations)
        ratio = relative / band
        squared = ratio * ratio
        anomaly = ratio > 1.0
        score = consistent_score(squared / (1.0 + squared), anomaly)
        expected = seasonal + level
        half_width = band * self.unit_ * self.scale_
        reach = band * self._range_unit()
        direction = self.params["direction"]
        lower = np.maximum(expected - half_width, self.low_ - reach)
        upper = np.minimum(expected + half_width, self.high_ + reach)
        # Bands that do not overlap leave no value unflagged: show the range bound.
        empty = lower > upper
        if empty.any():
            collapsed = np.clip(expected, self.low_ - reach, self.high_ + reach)
            lower = np.where(empty, collapsed, lower)
            upper = np.where(empty, collapsed, upper)
        if direction == "upper":
            lower = np.full(values.shape, -np.inf)
        elif direction == "lower":
            upper = np.full(values.shape, np.inf)
        # Beyond the band's edge, or 0: a sustained change inside it (the Scores rule).
        side = np.where(anomaly, (values > upper).view(np.int8) - (values < lower).view(np.int8), 0)
        side = side.astype(np.int8)
        return Scores(expected, lower, upper, score, anomaly, side)

    def _advance(
        self, context: AdaptiveContext, residuals: FloatArray, deviations: FloatArray
    ) -> None:
        """Move ``context`` past the scored points."""
        window = int(self.params["window"])
        keep = int(self.params["rate_window"]) - 1
        context.residuals = [*context.residuals, *residuals.tolist()][-window:]
        joined = [*context.deviations, *deviations.tolist()]
        context.deviations = joined[max(len(joined) - keep, 0) :] if keep else []

    def fitted_scores(self, series: Series) -> Scores:
        first = series.timestamps[:1].astype(np.float64)
        context = AdaptiveContext((series.values[:1] - self.seasonal_.expected(first)).tolist(), [])
        return self.score_stream(context, series.timestamps, series.values)

    # -- one point in float arithmetic: _stream_core for an array of one, operation for
    # -- operation, so both give the same bits (the detector contract suite checks it)

    def baseline_at(self, timestamp: float) -> float:
        """The seasonal profile at ``timestamp`` (the level is the adapting part)."""
        return self.seasonal_.baseline_at(timestamp)

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, AdaptiveContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        point, residual, deviation = self._one(context, float(timestamp), float(value))
        self._advance_one(context, residual, deviation)
        return point

    def _peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, AdaptiveContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        return self._one(context, float(timestamp), float(value))[0]

    def _one(
        self, context: AdaptiveContext, timestamp: float, value: float
    ) -> tuple[PointScore, float, float]:
        params = self.params
        direction = params["direction"]
        seasonal_model = self.seasonal_
        if seasonal_model.period_ == 0:
            seasonal = float(seasonal_model.profile_[0])
        else:
            bin_ = int((timestamp % seasonal_model.period_) // seasonal_model.bin_seconds_)
            seasonal = float(seasonal_model.profile_[bin_])
        residual = value - seasonal
        window = int(params["window"])
        history = context.residuals[-window:]
        if len(history) < window:
            history = [history[0] if history else residual] * (window - len(history)) + history
        level = median_of(history)
        departure = residual - level
        if direction == "upper":
            watched = departure if departure > 0.0 else 0.0
        elif direction == "lower":
            watched = -departure if -departure > 0.0 else 0.0
        else:
            watched = abs(departure)
        deviation = _scalar_ratio(watched, self.scale_)
        rate_window = int(params["rate_window"])
        before = context.deviations[-(rate_window - 1) :] if rate_window > 1 else []
        padded = [0.0] * (rate_window - 1 - len(before)) + before + [deviation]
        total = padded[0]
        for item in padded[1:]:
            total += item
        rate = total / min(len(before) + 1, rate_window)
        relative = min(
            max(_scalar_ratio(deviation, self.unit_), _scalar_ratio(rate, self.rate_unit_)), _HUGE
        )
        relative = max(relative, self._beyond_one(value, direction))
        band = float(params["threshold"])
        ratio = relative / band
        squared = ratio * ratio
        anomaly = ratio > 1.0
        score = squared / (1.0 + squared)
        score = max(score, JUST_ABOVE_HALF) if anomaly else min(score, 0.5)
        expected = seasonal + level
        half_width = band * self.unit_ * self.scale_
        reach = band * self._range_unit()
        low, high = self.low_ - reach, self.high_ + reach
        lower = max(expected - half_width, low)
        upper = min(expected + half_width, high)
        if lower > upper:  # bands that do not overlap: show the range bound
            lower = upper = min(max(expected, low), high)
        if direction == "upper":
            lower = -math.inf
        elif direction == "lower":
            upper = math.inf
        side = (1 if value > upper else -1 if value < lower else 0) if anomaly else 0
        return (
            PointScore(expected, lower, upper, score, anomaly, side),
            residual,
            deviation,
        )

    def _beyond_one(self, value: float, direction: str) -> float:
        """:meth:`_beyond_range` for one value."""
        unit = self._range_unit()
        if math.isinf(unit):
            return 0.0
        above = value - self.high_
        above = above if above > 0.0 else 0.0
        below = self.low_ - value
        below = below if below > 0.0 else 0.0
        excess = above if direction == "upper" else below if direction == "lower" else above + below
        return min(_scalar_ratio(excess, unit), _HUGE)

    def _advance_one(self, context: AdaptiveContext, residual: float, deviation: float) -> None:
        """:meth:`_advance` for one point."""
        window = int(self.params["window"])
        keep = int(self.params["rate_window"]) - 1
        residuals = context.residuals
        residuals.append(residual)
        if len(residuals) > window:
            del residuals[: len(residuals) - window]
        if keep:
            deviations = context.deviations
            deviations.append(deviation)
            if len(deviations) > keep:
                del deviations[: len(deviations) - keep]
        else:
            context.deviations = []

    def state(self) -> JsonDict:
        return {
            "seasonal": self.seasonal_.state(),
            "scale": self.scale_,
            "unit": self.unit_,
            "rate_unit": self.rate_unit_,
            "low": self.low_,
            "high": self.high_,
            "residuals": self.residuals_.tolist(),
            "deviations": self.deviations_.tolist(),
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.seasonal_ = SeasonalDetector.from_state(
            {"period": self.params["period"]}, state["seasonal"]
        )
        self.scale_ = float(state["scale"])
        self.unit_ = float(state["unit"])
        self.rate_unit_ = float(state["rate_unit"])
        # Models stored before the range part existed keep their old behaviour.
        self.low_ = float(state.get("low", -np.inf))
        self.high_ = float(state.get("high", np.inf))
        self.residuals_ = np.asarray(state["residuals"], dtype=np.float64)
        self.deviations_ = np.asarray(state["deviations"], dtype=np.float64)
        # States stored before incidents were separate also hold "recent_times" and
        # "recent_levels" (how far the band was stretched): ignored.


def _array(items: list[float]) -> FloatArray:
    return np.asarray(items, dtype=np.float64).reshape(-1)


def _scalar_ratio(numerator: float, denominator: float) -> float:
    """:func:`_ratio` for one number."""
    if denominator > 0:
        return numerator / denominator
    return _HUGE if numerator > 0 else 0.0


def _ratio(numerator: FloatArray, denominator: float) -> FloatArray:
    """``numerator / denominator``, where x/0 is 0 for x == 0 and huge otherwise."""
    if denominator > 0:
        result: FloatArray = numerator / denominator
        return result
    return np.where(numerator > 0, _HUGE, 0.0)
