"""``pattern``: the shape of the latest points is unlike every stretch of the training
data (a cycle that changes its form, spikes in a new rhythm, a key held down)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from anomaly_api.detectors.bands import (
    ROUNDING,
    PointScore,
    Scores,
    decided_score,
    ratio,
    scores_of,
    side_units,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import DIRECTIONS, MAX_THRESHOLD, JsonDict, Parameter
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

_CLAMP = 1e100
"""Scaled values are kept within this, so that sums of ``window`` squares stay finite
(values that far out are anomalies whatever their shape)."""
_CALIBRATION_WINDOWS = 1024
"""At most this many training windows (evenly spaced) are matched against the rest to
calibrate: the fit costs at most this many times ``history * window``."""
_CHUNK = 256
_BAND_PASSES = 8
"""Passes that grow the band by the training windows' intervals touching it before the
general method (a sort) is used."""


class PatternContext(Context):
    """The latest ``window - 1`` values (oldest first) and where the next window starts,
    counted in the training history's points (windows that overlap it are not matches)."""

    __slots__ = ("position", "recent")

    def __init__(self, recent: list[float] | None = None, position: int = 0) -> None:
        super().__init__()
        self.recent = [] if recent is None else recent
        self.position = position

    def to_json(self) -> JsonDict:
        return {"recent": self.recent, "position": self.position}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        recent, position = data.get("recent"), data.get("position", 0)
        try:
            values = [float(item) for item in recent] if isinstance(recent, list) else []
        except (TypeError, ValueError):
            return cls()
        if not all(math.isfinite(item) for item in values):
            return cls()
        if not isinstance(position, int) or isinstance(position, bool):
            position = 0
        return cls(values, position)

    def _copy(self) -> Self:
        return type(self)(list(self.recent), self.position)


class PatternDetector(Detector):
    """How far the shape of the last ``window`` points lies from its nearest match among
    every stretch of ``window`` points of the training data.

    Level bands judge each value; this detector judges the *form* of the recent past:
    a daily curve whose peak comes early, spikes that arrive in a new rhythm (a load
    balancer's bursts), a value held where it used to bounce (a key held down). The
    distance of a window from its nearest neighbour among the training windows, other
    than itself and the windows that overlap it, is the *discord* measure of Keogh,
    Lin & Fu (2005, HOT SAX), computed here exactly as a row of the matrix profile
    (Yeh et al. 2016) of the stream against the training data. Each window's mean is
    taken out first, so a shift of the whole window is no change of form, but a step
    inside it is; its size is kept (not z-normalised), so a spike or the noise growing
    is a change too, and flat stretches stay comparable with noisy ones.

    **Calibration.** The nearest-neighbour distance of (up to 1,024 evenly spaced)
    training windows among the others is computed; its median is the expected distance,
    and the ``quantile`` (99th percentile) of the distances above it is the unit.
    ``score`` is ``d² / (1 + d²)`` of the window's distance ``d`` above the median in
    ``threshold`` units: *a shape farther from anything in training than all but 1% of
    the training windows were from each other, by* ``threshold`` *times that margin*. A
    shape that only comes closer is never an anomaly. As for every detector that learns
    from windows, an incident in training that spans more than 1% of the windows
    widens the unit.

    **The band.** With the window's other points fixed, the squared distance to each
    training window is a parabola in the newest value, lowest at the value that window
    continues with. ``expected`` is that value for the nearest match (the analogue
    forecast of Lorenz 1969); ``[lower, upper]`` is the stretch of values around it that
    keep the shape within the limit of some training window (the union of each one's
    interval), so a value outside the band is exactly a value that is flagged. When no
    value can (the points before are already unlike anything seen), the band shrinks to
    ``expected``. Points are taken
    in order, their timestamps are not used. A point costs ``history * window``
    multiply-adds (0.15 to 0.2 ms at the defaults, on this project's 2-core test machine).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> times = np.arange(3000) * 300
    >>> values = 5 + rng.normal(0, 0.3, 3000)
    >>> values[::48] += 6  # a burst every 4 hours
    >>> values[2000:2200:12] += 6  # then every hour, for 200 points
    >>> detector = PatternDetector().fit(Series.from_arrays(times[:1500], values[:1500]))
    >>> scores = detector.score(times[1500:], values[1500:])
    >>> alerts = np.flatnonzero(scores.incident == 1) + 1500
    >>> alerts[(alerts >= 2000) & (alerts < 2250)].tolist()  # at the second early burst
    [2012]
    >>> bool(scores.anomaly[:480].any())  # the bursts of the old rhythm: all normal
    False
    """

    name: ClassVar[str] = "pattern"
    description: ClassVar[str] = (
        "The distance of the last points' shape from its nearest match in training "
        "(a discord): changed cycles, new rhythms of spikes, held values."
    )
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = PatternContext
    learns: ClassVar[str] = (
        "every point enters the window whose shape is judged; the shapes it is matched "
        "against change when it is fitted again"
    )
    cooldown_default: ClassVar[int] = 24 * 3600
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "threshold",
            float,
            1.0,
            "How far the window's distance from its nearest training match may lie above "
            "the training windows' median distance, in calibrated units (the 99th "
            "percentile of their distances above it).",
            minimum=0.0,
            exclusive_minimum=True,
            maximum=MAX_THRESHOLD,
        ),
        Parameter(
            "window",
            int,
            16,
            "How many of the latest points make the shape judged at each point (at most a "
            "quarter of the training points used: a shorter series uses that).",
            minimum=2,
            maximum=288,
        ),
        Parameter(
            "history",
            int,
            4032,
            "How many of the latest training points the shapes are matched against (each "
            "point costs this many times window multiply-adds).",
            minimum=10,
            maximum=8640,
        ),
        Parameter(
            "direction",
            str,
            "both",
            "Which anomalies count: 'both', only points above the band ('upper') or only "
            "below it ('lower').",
            choices=DIRECTIONS,
        ),
        Parameter(
            "quantile",
            float,
            0.99,
            "Quantile of the training windows' nearest-match distances above their median "
            "that is one unit.",
            minimum=0.5,
            maximum=0.9999,
        ),
    )

    @classmethod
    def work_s(cls, params: Mapping[str, Any], fit_points: int, score_points: int) -> float:
        """Fitting reads the points and calibrates on ``history`` of them; each point
        scored is compared with ``history`` windows (measured: 93 us a point with a
        history of 100, 336 us at the defaults, 795 us at 8,640 and a window of 288;
        rounded up here)."""
        history, window = int(params["history"]), int(params["window"])
        fit_us = 0.5 * fit_points + 20.0 * history * (1.0 + window / 64.0)
        score_us = 100.0 + 0.06 * history + 0.0002 * history * window
        return (fit_us + score_points * score_us) / 1e6

    center_: float
    unit_: float
    window_: int
    offset_: float
    scale_: float
    reference_: list[float]

    def _fit_core(self, series: Series) -> None:
        values = series.values[-int(self.params["history"]) :]
        offset = float(np.median(values))
        reach = float(np.max(np.abs(values - offset)))
        self.offset_ = offset
        self.scale_ = reach if math.isfinite(reach) and reach > 0.0 else 1.0
        self.window_ = max(min(int(self.params["window"]), values.size // 4), 2)
        self.reference_ = values.tolist()
        self.center_, self.unit_ = 0.0, 0.0
        self._derive()
        self.center_, self.unit_ = self._calibrate()
        self._derive()

    def _derive(self) -> None:
        window = self.window_
        scaled = self._scaled(np.asarray(self.reference_, dtype=np.float64))
        self._scaled_reference = scaled
        windows = sliding_window_view(scaled, window)
        means = windows.mean(axis=1)
        norms = np.empty(means.size)
        for start in range(0, means.size, _CHUNK):
            part = windows[start : start + _CHUNK] - means[start : start + _CHUNK, None]
            norms[start : start + _CHUNK] = np.einsum("ij,ij->i", part, part)
        self._means = means
        self._norms = norms
        self._last = windows[:, -1] - means  # each window's newest point, its mean out
        # What the last point's parabola is multiplied by: 1 - 1/window.
        self._curvature = 1.0 - 1.0 / window
        threshold = float(self.params["threshold"])
        self._limit = self.center_ + threshold * self.unit_
        self._margin = threshold * self.unit_
        direction = self.params["direction"]
        self._watch_upper = direction != "lower"
        self._watch_lower = direction != "upper"

    def _scaled(self, values: FloatArray) -> FloatArray:
        scaled: FloatArray = np.clip((values - self.offset_) / self.scale_, -_CLAMP, _CLAMP)
        return scaled

    def _calibrate(self) -> tuple[float, float]:
        """The median and unit of the nearest-neighbour distances of training windows
        among the other training windows (no overlap)."""
        window = self.window_
        windows = sliding_window_view(self._scaled_reference, window)
        count = windows.shape[0]
        chosen = np.unique(np.linspace(0, count - 1, min(count, _CALIBRATION_WINDOWS)).round())
        chosen = chosen.astype(np.int64)
        centred = windows - self._means[:, None]
        distances = []
        for start in range(0, chosen.size, _CHUNK):
            rows = chosen[start : start + _CHUNK]
            # |a - b|² of mean-free windows; the cross term needs only one side centred.
            squared = (
                self._norms[rows, None] + self._norms[None, :] - 2.0 * (centred[rows] @ centred.T)
            )
            overlap = np.abs(np.arange(count)[None, :] - rows[:, None]) < window
            squared[overlap] = np.inf
            distances.append(np.sqrt(np.maximum(squared.min(axis=1), 0.0)))
        nearest = np.concatenate(distances)
        nearest = nearest[np.isfinite(nearest)]
        if nearest.size == 0:  # too short for any window to have a match apart from itself
            return 0.0, 0.0
        center = float(np.median(nearest))
        # A series that repeats exactly (a synthetic cycle, a counter's plateaus) has
        # distances of rounding: the arithmetic's error grows with the window's squares,
        # which are at most ``window`` (values are scaled to the training's reach). A
        # margin below ROUNDING of that size is no change of shape. (Constant training
        # scales to zeros exactly: there any change is one.)
        constant = not np.any(self._scaled_reference)
        floor = 0.0 if constant else math.sqrt(ROUNDING * window)
        unit, _ = side_units(nearest - center, float(self.params["quantile"]), floor)
        return center, unit

    def initial_context(self) -> PatternContext:
        keep = self.window_ - 1
        size = len(self.reference_)
        return PatternContext(self.reference_[size - keep :], size - keep)

    def _step(self, context: PatternContext, value: float) -> PointScore:
        """One point: the window it ends, its nearest match, the band; the window moves."""
        recent = context.recent
        keep = self.window_ - 1
        if len(recent) > keep:
            del recent[: len(recent) - keep]
        position = context.position
        if len(recent) < keep:  # the start of a plot of the training data
            recent.append(value)
            return PointScore(value, -math.inf, math.inf, 0.0, False, 0)
        scaled = self._scaled(np.asarray(recent, dtype=np.float64))
        newest = float(self._scaled(np.asarray([value], dtype=np.float64))[0])
        total = float(scaled.sum())
        others = keep
        # The window's first points against each training window's (their means out):
        # the squared distance is lowest at ``best`` for the newest point, ``floor`` there.
        reference = self._scaled_reference
        cross = np.correlate(reference[:-1], scaled, mode="valid") - self._means * total
        sums = total + self._last
        squares = float(np.dot(scaled, scaled)) - 2.0 * cross + self._norms - self._last**2
        floor = squares - sums * sums / others
        best = self._last + sums / others
        distance2 = floor + self._curvature * (newest - best) ** 2
        # Training windows overlapping this one are the same points, not matches.
        count = distance2.size
        low, high = max(position - keep, 0), min(position + keep + 1, count)
        if low < high:
            distance2[low:high] = np.inf
            floor[low:high] = np.inf
        nearest = int(np.argmin(distance2))
        distance = math.sqrt(max(float(distance2[nearest]), 0.0))
        limit = self._limit
        anomaly = distance > limit
        match = int(np.argmin(floor)) if anomaly else nearest
        expected_scaled = float(best[match])
        low_scaled, high_scaled = self._band(floor, best, expected_scaled)
        expected = self._unscaled(expected_scaled)
        upper = self._unscaled(high_scaled)
        lower = self._unscaled(low_scaled)
        side = 1 if value > upper else -1 if value < lower else 0
        if side == 0 and anomaly:
            side = 1 if value > expected else -1 if value < expected else 0
        watched = (side >= 0 and self._watch_upper) or (side <= 0 and self._watch_lower)
        anomaly = anomaly and watched
        score = decided_score(ratio(distance - self.center_, self._margin), anomaly)
        if not watched:
            score = 0.0
        if not self._watch_upper:
            upper = math.inf
        if not self._watch_lower:
            lower = -math.inf
        recent.append(value)
        del recent[0]
        # Past the history's end no training window overlaps: the count stays bounded.
        context.position = min(position + 1, count + keep)
        return PointScore(expected, lower, upper, score, anomaly, side if anomaly else 0)

    def _band(self, floor: FloatArray, best: FloatArray, expected: float) -> tuple[float, float]:
        """The stretch of newest values around ``expected`` whose window stays within the
        limit of some training window: the union of each window's interval, the part of
        it that holds ``expected`` (just ``expected`` when none does)."""
        with np.errstate(invalid="ignore", over="ignore"):
            reach = self._limit * self._limit - floor
            inside = np.isfinite(reach) & (reach > 0.0)
            if not inside.any():
                return expected, expected
            half = np.sqrt(reach[inside] / self._curvature)
            centres = best[inside]
            lows, highs = centres - half, centres + half
        holding = (lows <= expected) & (highs >= expected)
        if not holding.any():
            return expected, expected
        low, high = float(lows[holding].min()), float(highs[holding].max())
        # Grow the stretch by every interval that touches it, until none is left: a few
        # passes in practice; the sort below answers the same in any case.
        for _ in range(_BAND_PASSES):
            touching = (lows <= high) & (highs >= low)
            grown_low, grown_high = float(lows[touching].min()), float(highs[touching].max())
            if grown_low == low and grown_high == high:
                return low, high
            low, high = grown_low, grown_high
        order = np.argsort(lows, kind="stable")
        lows, highs = lows[order], highs[order]
        reached = np.maximum.accumulate(highs)
        # A new stretch starts where an interval begins beyond all before it.
        starts = np.flatnonzero(np.concatenate(([True], lows[1:] > reached[:-1])))
        ends = np.concatenate((starts[1:] - 1, [lows.size - 1]))
        part = int(np.searchsorted(lows[starts], expected, side="right")) - 1
        return float(lows[starts[part]]), float(reached[ends[part]])

    def _unscaled(self, scaled: float) -> float:
        value = self.offset_ + scaled * self.scale_
        largest = 1.7976931348623157e308
        return min(max(value, -largest), largest) if math.isfinite(value) else value

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        assert isinstance(context, PatternContext)
        points = [self._step(context, value) for value in values.tolist()]
        return scores_of(points)

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, PatternContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        return self._step(context, float(value))

    def fitted_scores(self, series: Series) -> Scores:
        # The training series from its start: its windows' positions in the history
        # (the history is its last ``history`` points).
        start = len(self.reference_) - len(series)
        return self.score_stream(PatternContext([], start), series.timestamps, series.values)

    def state(self) -> JsonDict:
        return {
            "center": self.center_,
            "unit": self.unit_,
            "window": self.window_,
            "offset": self.offset_,
            "scale": self.scale_,
            "reference": self.reference_,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.center_ = float(state["center"])
        self.unit_ = float(state["unit"])
        self.window_ = int(state["window"])
        self.offset_ = float(state["offset"])
        self.scale_ = float(state["scale"])
        self.reference_ = [float(item) for item in state["reference"]]
        self._derive()
