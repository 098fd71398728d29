"""``adaptive``: deviations from the recent, seasonal level, judged against the past."""

from __future__ import annotations

import bisect
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
MAX_STAIRCASE = 512
"""Steps of the "largest recent level" staircase a context keeps at most; beyond that the
oldest neighbours are merged (the higher level, held until the later one's time), which
can only hold an alert back a little longer, never let one through."""


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


def staircase(times: FloatArray, levels: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The points no later point outdoes: all a future "largest recent level" can be.

    Their levels fall strictly with time, so a state of a day of 1-second data keeps a
    handful of points, not 86,400.
    """
    if levels.size == 0:
        return times, levels
    later_best = np.append(np.maximum.accumulate(levels[::-1])[::-1][1:], -np.inf)
    keep = levels > later_best
    return times[keep], levels[keep]


def bounded_staircase(times: FloatArray, levels: FloatArray) -> tuple[FloatArray, FloatArray]:
    """:func:`staircase` output cut to :data:`MAX_STAIRCASE` steps by merging the oldest
    neighbours (see there); a noisy series keeps a handful of steps, so this only bounds
    what a pathological one could make the context hold."""
    while times.size > MAX_STAIRCASE:
        excess = min(times.size - MAX_STAIRCASE, times.size // 2)
        # Merge steps 2i and 2i+1 for the oldest ``excess`` pairs: the earlier (higher)
        # level with the later time.
        merged_times = times[1 : 2 * excess : 2]
        merged_levels = levels[0 : 2 * excess : 2]
        times = np.concatenate([merged_times, times[2 * excess :]])
        levels = np.concatenate([merged_levels, levels[2 * excess :]])
    return times, levels


class AdaptiveContext(Context):
    """What scoring the next point needs of the points before it: the last ``window``
    residuals (the level is their median), the last ``rate_window - 1`` deviations (the
    sustained part averages them with the new one) and the staircase of the largest
    levels of the last ``cooldown_seconds`` (how far the band is stretched). Plain lists
    of floats: a single point is scored from them in float arithmetic."""

    __slots__ = ("deviations", "recent_levels", "recent_times", "residuals")

    def __init__(
        self,
        residuals: list[float],
        deviations: list[float],
        recent_times: list[float],
        recent_levels: list[float],
    ) -> None:
        self.residuals = residuals
        self.deviations = deviations
        self.recent_times = recent_times
        self.recent_levels = recent_levels

    def to_json(self) -> JsonDict:
        return {
            "residuals": list(self.residuals),
            "deviations": list(self.deviations),
            "recent_times": list(self.recent_times),
            "recent_levels": list(self.recent_levels),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        def floats(key: str) -> list[float]:
            return [
                float(item) for item in np.asarray(data.get(key, []), dtype=np.float64).reshape(-1)
            ]

        return cls(
            floats("residuals"),
            floats("deviations"),
            floats("recent_times"),
            floats("recent_levels"),
        )

    def copy(self) -> Self:
        return type(self)(
            list(self.residuals),
            list(self.deviations),
            list(self.recent_times),
            list(self.recent_levels),
        )


def recent_maxima(
    history: tuple[FloatArray, FloatArray],
    times: FloatArray,
    levels: FloatArray,
    horizon: float,
) -> FloatArray:
    """For each point, the largest level among the points before it (``history``, a
    :func:`staircase`, then the earlier points of ``times``) that lie less than
    ``horizon`` seconds earlier; 0 when there are none."""
    history_times, history_levels = history
    # History: its levels fall with time, so the first one inside the horizon is the max.
    first = np.searchsorted(history_times, times - horizon, side="right")
    padded = np.append(history_levels, 0.0)
    result = padded[np.minimum(first, history_levels.size)]
    # Earlier points of the batch: a monotonic deque, one pass.
    window: list[int] = []
    head = 0
    for index in range(times.size):
        while head < len(window) and times[window[head]] <= times[index] - horizon:
            head += 1
        if head < len(window):
            result[index] = max(result[index], levels[window[head]])
        while len(window) > head and levels[window[-1]] <= levels[index]:
            window.pop()
        window.append(index)
    return result


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
    5. **Only news alerts**: the band is at least ``threshold`` units wide and stretches
       to the largest deviation of the last ``cooldown_seconds`` (a day): an ongoing
       incident alerts once, and again only if it gets worse.

    **Learning from the stream**: parts 1, 3 and 5 follow the stream point by point
    (:class:`AdaptiveContext`: the last residuals, deviations and largest recent levels),
    whether the points came in a batch or one predict at a time; the seasonal profile,
    the scale and the units are what the fit estimated, until the next fit.

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
    >>> values[2600] += 20.0  # a smaller one, eight hours later: not news
    >>> values[2900] += 40.0  # a bigger one: worse, so news
    >>> flagged = detector.score(minutes[2000:], values[2000:]).anomaly
    >>> (np.flatnonzero(flagged) + 2000).tolist()
    [2500, 2900]
    """

    name: ClassVar[str] = "adaptive"
    description: ClassVar[str] = (
        "Deviation from the recent seasonal level in units of the series' own past "
        "deviations; alerts once per incident. The best detector on NAB data here."
    )
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = AdaptiveContext
    learns: ClassVar[str] = (
        "every point moves the rolling level, the sustained-change average and the "
        "largest recent deviation; the profile and units change when it is fitted again"
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
            12,
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
        Parameter(
            "cooldown_seconds",
            int,
            86_400,
            "How long the band stays stretched to the largest recent deviation (0: never).",
            minimum=0,
            maximum=30 * 86_400,
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
    recent_times_: FloatArray
    recent_levels_: FloatArray

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
        self.unit_ = float(np.quantile(deviations, self.params["quantile"]))
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
        levels = self._relative(deviations, rates)
        recent = times[1:] > times[-1] - self.params["cooldown_seconds"]
        self.recent_times_, self.recent_levels_ = bounded_staircase(
            *staircase(times[1:][recent], levels[recent])
        )

    def initial_context(self) -> AdaptiveContext:
        return AdaptiveContext(
            self.residuals_.tolist(),
            self.deviations_.tolist(),
            self.recent_times_.tolist(),
            self.recent_levels_.tolist(),
        )

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
        cooldown = float(self.params["cooldown_seconds"])
        seasonal = self.seasonal_.expected(timestamps)
        residuals = values - seasonal
        level = rolling_median_forecast(_array(context.residuals), residuals, window)
        departures = residuals - level
        deviations = self._deviations(departures)
        rates = trailing_mean(_array(context.deviations), deviations, rate_window)
        relative = np.maximum(self._relative(deviations, rates), self._beyond_range(values))
        threshold = float(self.params["threshold"])
        stretch = recent_maxima(
            (_array(context.recent_times), _array(context.recent_levels)),
            timestamps,
            relative,
            cooldown,
        )
        self._advance(context, timestamps, residuals, deviations, relative)
        band = np.maximum(threshold, stretch)
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
        side = np.where(anomaly, np.where(departures >= 0, 1, -1), 0).astype(np.int8)
        return Scores(expected, lower, upper, score, anomaly, side)

    def _advance(
        self,
        context: AdaptiveContext,
        timestamps: FloatArray,
        residuals: FloatArray,
        deviations: FloatArray,
        relative: FloatArray,
    ) -> None:
        """Move ``context`` past the scored points."""
        window = int(self.params["window"])
        keep = int(self.params["rate_window"]) - 1
        context.residuals = [*context.residuals, *residuals.tolist()][-window:]
        joined = [*context.deviations, *deviations.tolist()]
        context.deviations = joined[max(len(joined) - keep, 0) :] if keep else []
        times = np.concatenate([_array(context.recent_times), timestamps])
        levels = np.concatenate([_array(context.recent_levels), relative])
        recent = times > times[-1] - float(self.params["cooldown_seconds"])
        kept_times, kept_levels = bounded_staircase(*staircase(times[recent], levels[recent]))
        context.recent_times, context.recent_levels = kept_times.tolist(), kept_levels.tolist()

    def fitted_scores(self, series: Series) -> Scores:
        first = series.timestamps[:1].astype(np.float64)
        context = AdaptiveContext(
            (series.values[:1] - self.seasonal_.expected(first)).tolist(), [], [], []
        )
        return self.score_stream(context, series.timestamps, series.values)

    # -- one point in float arithmetic: _stream_core for an array of one, operation for
    # -- operation, so both give the same bits (the detector contract suite checks it)

    def observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, AdaptiveContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        point, residual, deviation, relative = self._one(context, float(timestamp), float(value))
        self._advance_one(context, float(timestamp), residual, deviation, relative)
        return point

    def peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, AdaptiveContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        return self._one(context, float(timestamp), float(value))[0]

    def _one(
        self, context: AdaptiveContext, timestamp: float, value: float
    ) -> tuple[PointScore, float, float, float]:
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
        horizon = float(params["cooldown_seconds"])
        times, levels = context.recent_times, context.recent_levels
        first = bisect.bisect_right(times, timestamp - horizon)
        stretch = levels[first] if first < len(levels) else 0.0
        threshold = float(params["threshold"])
        band = threshold if threshold >= stretch else stretch
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
        side = (1 if departure >= 0 else -1) if anomaly else 0
        return (
            PointScore(expected, lower, upper, score, anomaly, side),
            residual,
            deviation,
            relative,
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

    def _advance_one(
        self,
        context: AdaptiveContext,
        timestamp: float,
        residual: float,
        deviation: float,
        relative: float,
    ) -> None:
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
        times, levels = context.recent_times, context.recent_levels
        cooldown = float(self.params["cooldown_seconds"])
        if cooldown <= 0:  # nothing is recent: not even this point
            times.clear()
            levels.clear()
            return
        horizon_start = timestamp - cooldown
        gone = bisect.bisect_right(times, horizon_start)
        if gone:
            del times[:gone], levels[:gone]
        while levels and levels[-1] <= relative:
            times.pop()
            levels.pop()
        times.append(timestamp)
        levels.append(relative)
        if len(times) > MAX_STAIRCASE:
            kept_times, kept_levels = bounded_staircase(_array(times), _array(levels))
            context.recent_times, context.recent_levels = kept_times.tolist(), kept_levels.tolist()

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
            "recent_times": self.recent_times_.tolist(),
            "recent_levels": self.recent_levels_.tolist(),
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
        self.recent_times_ = np.asarray(state["recent_times"], dtype=np.float64)
        self.recent_levels_ = np.asarray(state["recent_levels"], dtype=np.float64)


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
